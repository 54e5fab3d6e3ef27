"""What `python -m rag serve` does once, before its first request."""

from __future__ import annotations

import gc

from rag.pipeline import RAG


def warm_start(engine: RAG) -> None:
    """Loads what the first question would (the embedding model, BM25), then moves every object
    alive into the permanent generation. Full collections then walk only what serving allocated:
    2-3 ms each instead of 150-260 ms with the GIL held, a stall of every request in flight
    (bench/api.py at 16 clients saw one or two per 320 asks)."""
    engine.sync_lexical()
    _ = engine.embedder  # created here, so a local model's weights load now, not in a request
    gc.collect()
    gc.freeze()
