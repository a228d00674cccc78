"""The delivery for a processing guarantee: the one place that knows every implementation of
:class:`~stream_detector.kafka.delivery.Delivery`, so the base class never imports its subclasses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from stream_detector.config import DetectorSettings
from stream_detector.kafka.at_least_once import AtLeastOnceDelivery
from stream_detector.kafka.delivery import Delivery, Phase
from stream_detector.kafka.transactions import ExactlyOnceDelivery

__all__ = ["make_delivery"]


def make_delivery(
    settings: DetectorSettings,
    *,
    registry: CollectorRegistry,
    stop: threading.Event,
    on_phase: Callable[[Phase], None] = lambda phase: None,
) -> Delivery:
    """The delivery for ``settings.processing_guarantee``: :class:`ExactlyOnceDelivery` for
    ``exactly_once``, :class:`AtLeastOnceDelivery` otherwise."""
    if settings.processing_guarantee == "exactly_once":
        return ExactlyOnceDelivery(settings, registry=registry, stop=stop, on_phase=on_phase)
    return AtLeastOnceDelivery(settings, registry=registry, stop=stop, on_phase=on_phase)
