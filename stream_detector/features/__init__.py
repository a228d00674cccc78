"""The feature step shared by training, ``score`` and ``serve``."""

from __future__ import annotations

from stream_detector.features.base import IDENTIFIER_COLUMNS, FeatureStep
from stream_detector.features.numeric import NumericFeatures

__all__ = ["IDENTIFIER_COLUMNS", "FeatureStep", "NumericFeatures"]
