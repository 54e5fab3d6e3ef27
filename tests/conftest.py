"""Shared fixtures: the real benchmark data beside the repo and one real embedder per test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import rag  # noqa: F401  (sets the offline and thread environment before any model loads)

REPO = Path(__file__).resolve().parent.parent
BENCH_DATA = Path(os.environ.get("RAG_BENCH_DATA", REPO.parent / "shared" / "bench" / "data"))

pytest_plugins = ["tests.llm_fixtures", "tests.chroma_fixtures"]


@pytest.fixture(scope="session")
def bench_data() -> Path:
    if not BENCH_DATA.is_dir():
        pytest.fail(f"benchmark data not found at {BENCH_DATA}: ../shared must sit beside the repo")
    return BENCH_DATA


@pytest.fixture(scope="session")
def embedder():
    from rag.embeddings import Embedder

    return Embedder()
