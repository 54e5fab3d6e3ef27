"""Shared fixtures: the real benchmark data beside the repo and one real embedder per test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The two workers share two cores. OpenMP threads that spin while they wait for work (the
# default) take cycles from the other worker; sleeping instead cut the two sweeps, run side by
# side, from 343 to 292 s. Set before torch loads; subprocesses inherit it. (The app keeps the
# default: alone, llama.cpp writes 20-30% slower with passive threads.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import rag  # noqa: F401  (sets the offline and thread environment before any model loads)

REPO = Path(__file__).resolve().parent.parent
BENCH_DATA = Path(os.environ.get("RAG_BENCH_DATA", REPO.parent / "shared" / "bench" / "data"))

pytest_plugins = ["tests.llm_fixtures", "tests.chroma_fixtures"]

# The slowest modules first (from `pytest --durations=0` on 2 cores, 2026-12-03: test_cli 306 s,
# the office sweep 227 s, the PDF sweep 146 s, ...). pytest-xdist hands whole modules to its
# workers in collection order, so the long ones start at once and the short ones fill the gaps.
SLOWEST_FIRST = (
    "test_cli", "test_office_sweep", "test_pdf_sweep", "test_crash_safety", "test_app",
    "test_concurrency", "test_e2e_ingest", "test_e2e_conversations", "test_evaluation",
    "test_pipeline", "test_reindex", "test_e2e_browser", "test_e2e_preview",
    "test_ingest_queue", "test_ocr", "test_chat_service",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable within a module


@pytest.fixture(scope="session")
def bench_data() -> Path:
    if not BENCH_DATA.is_dir():
        pytest.fail(f"benchmark data not found at {BENCH_DATA}: ../shared must sit beside the repo")
    return BENCH_DATA


@pytest.fixture(scope="session")
def embedder():
    from rag.embeddings import Embedder

    return Embedder()
