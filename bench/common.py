"""What the benchmark scripts share: where the data is, and percentiles."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as `python bench/x.py` from anywhere

BENCH_DATA = Path(os.environ.get("RAG_BENCH_DATA", REPO.parent / "shared" / "bench" / "data"))


def percentiles(values: list[float]) -> str:
    p50, p95 = np.percentile(values, [50, 95])
    return f"p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms (n={len(values)})"
