"""The feature step shared by training, ``score`` and ``serve``.

Without a ``features:`` section a bundle's numeric fields are used as they are
(:class:`NumericFeatures`). A :class:`FeatureSpec` adds calendar features and per-entity
event-time windows.

The window convention
---------------------
For an event ``e`` of entity ``k`` at event time ``t``, a window of length ``w`` and delay
``d`` covers ``k``'s **other** events with timestamps in ``[t - d - w, t - d)`` (strictly
earlier than ``t - d``: events of the same millisecond never see each other), **plus ``e``
itself when ``d`` is zero** (an undelayed window counts at least one event; its mean includes
the current value). Only events that arrived before ``e`` are seen: offline, the history is
sorted by ``(timestamp, event_id)``; online, arrival order. Label features count the events of
the delayed window whose label is 1 and was known at or before ``t``.

Values: exact (sums over a window's rows, from scratch for every event), ``std`` is the
population standard deviation. A statistic of an empty window (possible with a delay), a ratio
to a zero mean, a z-score of zero spread and a fraud rate of no events are 0;
``since_previous`` is the seconds since the entity's latest earlier event within the entry's
longest window, -1 when there is none. An event older than its entity's latest event by more
than ``lateness`` is refused (``too_late``) and not kept; within it, it is computed exactly
against what arrived before it.
"""

from __future__ import annotations

from stream_detector.features.base import IDENTIFIER_COLUMNS, FeatureStep
from stream_detector.features.engine import (
    BatchStats,
    EventColumns,
    FeatureBatch,
    FeatureEngine,
    LabelColumns,
)
from stream_detector.features.numeric import NumericFeatures
from stream_detector.features.spec import FeatureSpec, WindowFeature, duration_ms

__all__ = [
    "IDENTIFIER_COLUMNS",
    "BatchStats",
    "EventColumns",
    "FeatureBatch",
    "FeatureEngine",
    "FeatureSpec",
    "FeatureStep",
    "LabelColumns",
    "NumericFeatures",
    "WindowFeature",
    "duration_ms",
]
