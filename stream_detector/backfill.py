"""``stream-detector backfill``: load a raw history into the feature state store.

A service started on an empty store computes its first events' windows from nothing; after
``backfill`` with the history the model was trained on, its first live decisions equal those of
``score --history`` on the same history (and of the offline features the model learned from).
The history is computed by the feature engine exactly as ``train`` computes it: the rows sorted
by ``(timestamp, event_id)``, the labels of the label column known from each event's own time,
or those of a label file (``--labels``, the ``labels`` topic's format) when one is given.
Backfilling twice is harmless: the store holds each event once (by ``event_id``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

import numpy as np

from stream_detector.bundle import ModelBundle, load_bundle
from stream_detector.command import Command
from stream_detector.config import DetectorSettings
from stream_detector.errors import ConfigError, DataError
from stream_detector.features import FeatureEngine, LabelColumns
from stream_detector.history import history_columns, label_columns, read_labels, read_table
from stream_detector.redact import install_secret_filter
from stream_detector.state import StateStore
from stream_detector.state.factory import make_store

__all__ = ["BackfillCommand", "backfill"]

log = logging.getLogger(__name__)

_CHUNK = 50_000


def backfill(
    engine: FeatureEngine,
    bundle: ModelBundle,
    data: str | os.PathLike[str],
    *,
    labels: str | os.PathLike[str] | None = None,
) -> int:
    """Compute a raw history into ``engine``'s store; return the number of events.

    Labels come from ``labels`` (a label file) when given, else from the bundle's label
    column when the file has it (each known from its event's time), else there are none.
    """
    frame = read_table(data)
    cols = history_columns(frame, engine.spec, source=f"data file {data}")
    events = cols.events
    known: LabelColumns | None = None
    if labels is not None:
        known = read_labels(labels)
    elif bundle.manifest.label in frame.columns:
        y = frame[bundle.manifest.label].to_numpy()[cols.order]
        if not np.isin(y, (0, 1)).all():
            raise DataError(f"label column {bundle.manifest.label!r} must hold only 0 and 1")
        known = label_columns(events["event_id"], y, events[engine.spec.timestamp])
    del frame
    if known is not None and engine.spec.has_labels:
        engine.add_labels(known)
    for start in range(0, cols.n, _CHUNK):
        engine.transform(cols.part(start, start + _CHUNK))
    return cols.n


class BackfillCommand(Command):
    name = "backfill"
    help = "load a raw history into the feature state store (before serving)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--config", metavar="FILE", help="YAML settings (configs/detector.yaml): the store"
        )
        parser.add_argument("--model", metavar="DIR", help="model bundle directory")
        parser.add_argument(
            "--data", required=True, metavar="FILE", help="raw history (CSV or Parquet)"
        )
        parser.add_argument(
            "--labels", metavar="FILE", help="labels as JSON Lines, each with when it was known"
        )

    def run(self, args: argparse.Namespace) -> int:
        overrides: dict[str, Any] = {}
        if args.model is not None:
            overrides["model"] = args.model
        settings = DetectorSettings.load(args.config, overrides)
        install_secret_filter(settings)
        if settings.model is None:
            raise ConfigError("backfill needs a model bundle: --model DIR or model in the config")
        bundle = load_bundle(settings.model)
        if bundle.spec is None:
            raise ConfigError(
                f"model bundle {settings.model} has no feature spec: it keeps no state to fill"
            )
        store: StateStore = make_store(settings.state, bundle.spec)
        try:
            n = backfill(FeatureEngine(bundle.spec, store), bundle, args.data, labels=args.labels)
            held = store.size()
        finally:
            store.close()
        print(
            f"backfill: {n} events from {args.data} into the {settings.state.store} store "
            f"({held} keys held)",
            file=sys.stderr,
        )
        return 0
