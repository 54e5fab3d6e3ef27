"""Embeddings from any OpenAI-compatible endpoint (OpenAI, vLLM, TEI, Ollama, llama.cpp's server),
so the embedding model can run on another machine or a GPU shared by many app processes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import SecretStr

from rag.config import DEFAULT_EMBEDDING_MODEL
from rag.embeddings import remote_identity, resolve_model, tokenizer_spans
from rag.generation import public_url, root_cause

log = logging.getLogger(__name__)

# Retries after the first attempt, for what is often brief: connection refused (a server
# restarting), 429, 5xx. Waits double from BACKOFF_S: 0.5 + 1 + 2 s in all.
RETRIES = 3
BACKOFF_S = 0.5
# Per request of embedding_batch_size texts: a CPU server can take a minute for 16 chunks (the
# test server, SmolLM2 on 2 busy cores, did). Not retried: each retry would add a whole timeout.
TIMEOUT_S = 120.0
_MAX_REASON_CHARS = 300


class EmbeddingEndpointError(RuntimeError):
    """The endpoint could not embed; the message names it and the cause, never the key."""


class RemoteEmbedder:
    """The local Embedder's interface over POST {base_url}/embeddings: batched, retried, vectors
    L2-normalised float32 so a dot product stays the cosine.

    Token counts are estimates: the endpoint's tokenizer is unknown, so text is measured with
    the local MiniLM tokenizer (only the tokenizer is loaded) and chunks are kept under
    `max_tokens`, a conservative setting (RAG_EMBEDDING_MAX_TOKENS)."""

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        *,
        batch_size: int = 16,
        max_tokens: int = 384,
        dimension: int | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        import openai
        from transformers import AutoTokenizer

        self.model = model
        self.name = remote_identity(model, base_url)
        self.url = f"{public_url(base_url).rstrip('/')}/embeddings"
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._dimension = dimension  # expected (the index's) or learned from the first answer
        self._timeout_s = timeout_s
        self._key = SecretStr(api_key) if api_key else None  # masked in any repr
        # A placeholder, never None: the client would fall back to OPENAI_API_KEY, the language
        # model's key, and send it to this endpoint. Retries are ours (see _post).
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed",
                                     timeout=timeout_s, max_retries=0)
        self._tokenizer = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_EMBEDDING_MODEL))
        self._measuring = threading.Lock()  # a fast tokenizer fails when two threads share it

    @property
    def dimension(self) -> int:
        """Learned from the endpoint's first answer: asked before any, it costs one request."""
        if self._dimension is None:
            self.embed(["dimension"])
        return self._dimension

    def embed(self, texts: Sequence[str],
              progress: Callable[[int], None] | None = None) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        parts = []
        for start in range(0, len(texts), self.batch_size):
            parts.append(self._embed_batch(list(texts[start:start + self.batch_size])))
            if progress is not None:
                progress(start + len(parts[-1]))
        return np.concatenate(parts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        with self._measuring:
            return tokenizer_spans(self._tokenizer, text)

    def count_tokens(self, text: str) -> int:
        return len(self.token_spans(text))

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        rows = [item.embedding for item in sorted(self._post(texts).data, key=lambda i: i.index)]
        if any(row and isinstance(row[0], list) for row in rows):
            raise self._error("answered one vector per token, not one per text: serve the model "
                              "with a pooling type (llama.cpp's llama-server: --pooling mean)")
        lengths = {len(row) for row in rows}
        if len(rows) != len(texts) or len(lengths) != 1:
            raise self._error(f"answered {len(rows)} vectors (lengths {sorted(lengths)}) for "
                              f"{len(texts)} texts")
        vectors = np.asarray(rows, dtype=np.float32)
        if self._dimension is None:
            self._dimension = vectors.shape[1]
        elif vectors.shape[1] != self._dimension:
            raise self._error(
                f"answered {vectors.shape[1]}-dimensional vectors where {self._dimension} were "
                "expected: another model behind the same name? Re-index to use it")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1)

    def _post(self, texts: list[str]):
        import openai

        attempt = 0
        while True:
            try:
                return self._client.embeddings.create(
                    model=self.model, input=texts, encoding_format="float")
            except openai.APIError as error:
                reason = self._describe(error)
                if attempt == RETRIES or not self._retryable(error):
                    raise self._error(reason) from None  # the chain may quote the key
                attempt += 1
                wait = BACKOFF_S * 2 ** (attempt - 1)
                log.warning("%s: %s; retry %d of %d in %g s", self.url, reason, attempt, RETRIES,
                            wait)
                time.sleep(wait)

    @staticmethod
    def _retryable(error: Exception) -> bool:
        import openai

        if isinstance(error, openai.APITimeoutError):
            return False
        if isinstance(error, openai.APIConnectionError):
            return True
        return isinstance(error, openai.APIStatusError) and (
            error.status_code == 429 or error.status_code >= 500)

    def _describe(self, error: Exception) -> str:
        import openai

        if isinstance(error, openai.APITimeoutError):
            return f"no answer within {self._timeout_s:g} s"
        if isinstance(error, openai.APIConnectionError):
            return f"unreachable ({root_cause(error)})"
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            if status in (401, 403):  # no body: OpenAI's quotes part of the key
                return f"HTTP {status}: the API key was refused (RAG_EMBEDDING_API_KEY)"
            body = error.body if isinstance(error.body, dict) else {}
            detail = body.get("message") or body.get("detail") or error.message
            if status == 404:
                detail = (f"model {self.model!r} not found, or no embeddings route at this URL "
                          f"({detail})")
            reason = f"HTTP {status}: {detail}"
        else:
            reason = f"{type(error).__name__}: {error}"
        key = self._key.get_secret_value() if self._key else ""
        if len(key) >= 4:  # error bodies may echo the key
            reason = reason.replace(key, "***")
        return reason[:_MAX_REASON_CHARS]

    def _error(self, reason: str) -> EmbeddingEndpointError:
        return EmbeddingEndpointError(f"embedding endpoint {self.url}: {reason}")
