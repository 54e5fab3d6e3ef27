"""What the benchmark scripts share: where the data is, percentiles, and results files."""

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


def write_results(path: Path, generated: str, decision_heading: str) -> None:
    """Write a results file; the hand-written section under `decision_heading` at its end
    survives a rerun, so the reasoning stays beside the regenerated figures."""
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    marker = f"\n{decision_heading}"
    kept = marker + previous.split(marker, 1)[1] if marker in previous else ""
    path.write_text(generated + kept, encoding="utf-8")
