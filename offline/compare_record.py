"""A finished comparison kept on disk, so that ``train --from-compare DIR`` need not run it again.

``compare --report DIR`` writes, beside ``compare.json`` and ``report.md``:

- ``winner.json``: the winning candidate (technique, scorer, model, blend members), the
  verdict, the ranking, the seed, and a fingerprint of the data (rows, positives, features and
  the sha256 of the feature matrix and labels);
- ``winner_scores.npy``: the winner's out-of-fold scores, NaN on rows no validation fold holds.

:func:`read_compare_record` reads them back and refuses a record made on other data, so the
threshold and the calibrator are chosen on out-of-fold scores of the very rows being trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from offline.compare import RANKING_KEYS, Candidate, Comparison
from offline.data import Dataset
from stream_detector.errors import DataError

__all__ = ["CompareRecord", "data_fingerprint", "read_compare_record", "write_compare_record"]

WINNER = "winner.json"
SCORES = "winner_scores.npy"
_FORMAT = 1


def data_fingerprint(ds: Dataset) -> dict[str, Any]:
    """Rows, positives, features and a sha256 of the feature matrix and the labels."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(ds.X, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(ds.y, dtype=np.int64).tobytes())
    return {
        "rows": int(ds.n),
        "positives": int(ds.positives),
        "features": list(ds.features),
        "sha256": digest.hexdigest(),
    }


def _candidate_dict(c: Candidate) -> dict[str, Any]:
    return {
        "technique": c.technique,
        "scorer": c.scorer,
        "model": c.model,
        "members": [_candidate_dict(m) for m in c.members],
    }


def _candidate(d: Any, where: str) -> Candidate:
    if not isinstance(d, dict) or not {"technique", "scorer", "model"} <= set(d):
        raise DataError(f"{where}: expected a candidate with technique, scorer and model")
    members = tuple(_candidate(m, where) for m in d.get("members") or [])
    if members:
        return Candidate.blend(members)
    return Candidate(str(d["technique"]), d["scorer"], d["model"])


def write_compare_record(directory: str | os.PathLike[str], cmp: Comparison) -> None:
    """Write ``winner.json`` and ``winner_scores.npy`` of ``cmp`` into ``directory``."""
    out = Path(directory)
    winner = cmp.winner
    assert winner.scores is not None
    scores = np.where(cmp.mask, winner.scores, np.nan)
    np.save(out / SCORES, scores.astype(np.float64), allow_pickle=False)
    record = {
        "format": _FORMAT,
        "winner": _candidate_dict(winner.candidate),
        "verdict": cmp.verdict(),
        "fit_seconds": winner.fit_seconds,
        "ranking": [{k: row[k] for k in RANKING_KEYS} for row in cmp.rows()],
        "data": data_fingerprint(cmp.data),
    }
    (out / WINNER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class CompareRecord:
    """A comparison read back: its winner, the winner's out-of-fold scores, its ranking."""

    candidate: Candidate
    scores: npt.NDArray[np.float64]
    mask: npt.NDArray[np.bool_]
    verdict: str
    ranking: list[dict[str, Any]]
    fit_seconds: float


def read_compare_record(directory: str | os.PathLike[str], ds: Dataset) -> CompareRecord:
    """Read the record ``compare --report`` left in ``directory``, for the data ``ds``.

    Raises
    ------
    DataError
        If the record is missing or malformed, or was made on other data (rows, labels,
        features or values differ).
    """
    src = Path(directory)
    try:
        record = json.loads((src / WINNER).read_text(encoding="utf-8"))
        scores = np.load(src / SCORES, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DataError(
            f"{src} holds no finished comparison ({WINNER}, {SCORES}); run "
            f"`stream-detector compare --report {src}` first"
        ) from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"{src}: the comparison record cannot be read: {exc}") from exc
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise DataError(f"{src / WINNER}: expected a comparison record of format {_FORMAT}")
    expected, found = data_fingerprint(ds), record.get("data")
    if found != expected:
        what = (
            "different rows or values"
            if isinstance(found, dict) and found.get("rows") == expected["rows"]
            else f"{found.get('rows') if isinstance(found, dict) else '?'} rows"
        )
        raise DataError(
            f"{src} compared other data ({what}); this data has {expected['rows']} rows, "
            f"{expected['positives']} positive: run compare on it again"
        )
    if scores.dtype.kind != "f" or scores.shape != (ds.n,):
        raise DataError(f"{src / SCORES}: expected {ds.n} float scores; got {scores.shape}")
    mask = ~np.isnan(scores)
    return CompareRecord(
        candidate=_candidate(record.get("winner"), str(src / WINNER)),
        scores=np.where(mask, scores, 0.0),
        mask=mask,
        verdict=str(record.get("verdict", "")),
        ranking=list(record.get("ranking") or []),
        fit_seconds=float(record.get("fit_seconds", 0.0)),
    )
