"""``python -m stream_detector``: the same as the ``stream-detector`` console script."""

from __future__ import annotations

import sys

from stream_detector.cli import main

if __name__ == "__main__":
    sys.exit(main())
