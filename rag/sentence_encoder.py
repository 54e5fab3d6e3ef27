"""A sentence-transformers model folder run on plain transformers when its recipe is the common
one (a transformer, mean or CLS pooling, optional normalisation): importing sentence-transformers
costs every process seconds (scikit-learn and its trainer load with it), and the CLI, the app
and every test process start an encoder. Any other recipe runs on sentence-transformers itself.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Protocol

import numpy as np

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"


class SentenceEncoder(Protocol):
    tokenizer: Any
    dimension: int
    max_seq_length: int  # tokens per input, [CLS] and [SEP] included

    def batches(self, texts: list[str], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(positions in `texts`, their unit-length float32 vectors), a batch at a time."""


def encode(encoder: SentenceEncoder, texts: list[str], batch_size: int, *,
           turn: AbstractContextManager | None = None,
           progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Vectors in the order of `texts`. `turn` is held for each batch, not the whole list, so a
    question's embedding waits for one batch of a long ingest at most; `progress` is told how
    many texts are done after each."""
    vectors = np.empty((len(texts), encoder.dimension), dtype=np.float32)
    batches, done = encoder.batches(texts, batch_size), 0
    while True:
        with turn or nullcontext():
            batch = next(batches, None)
        if batch is None:
            return vectors
        positions, found = batch
        vectors[positions] = found
        done += len(positions)
        if progress is not None:
            progress(done)


def load_encoder(path: str) -> SentenceEncoder:
    recipe = _plain_recipe(Path(path))
    if recipe is None:
        return _SentenceTransformersEncoder(path)
    return _TransformersEncoder(path, **recipe)


def _plain_recipe(folder: Path) -> dict | None:
    """The pooling and length of a folder that plain transformers runs exactly as
    sentence-transformers would, else None."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a hub name, or a plain transformers folder: sentence-transformers decides
    types = [module["type"] for module in modules]
    if types not in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]):
        return None
    if modules[0].get("path") or config.get("do_lower_case"):
        return None
    pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    modes = {key for key, on in pooling.items() if key.startswith("pooling_mode_") and on}
    if modes not in ({"pooling_mode_mean_tokens"}, {"pooling_mode_cls_token"}):
        return None
    return {"mean": modes == {"pooling_mode_mean_tokens"},
            "max_seq_length": int(config["max_seq_length"])}


class _TransformersEncoder:
    def __init__(self, path: str, *, mean: bool, max_seq_length: int) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path, model_max_length=max_seq_length)
        model = AutoModel.from_pretrained(path).eval()
        self._model = _traced(model, self.tokenizer)
        self._mean = mean
        self.max_seq_length = max_seq_length
        self.dimension = int(model.config.hidden_size)

    def batches(self, texts: list[str], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Longest first in tokens, so each batch pads to similar lengths. Sorting by characters,
        as sentence-transformers does, put chunks of 256 tokens beside ones of 120 (code and
        prose differ in characters per token): 22% of the encoded tokens were padding."""
        import torch

        if not texts:  # the tokenizer cannot pad an empty batch
            return
        encoded = self.tokenizer(texts, truncation="longest_first", max_length=self.max_seq_length)
        order = np.argsort([-len(ids) for ids in encoded["input_ids"]], kind="stable")
        for start in range(0, len(texts), batch_size):
            batch = order[start:start + batch_size]
            inputs = self.tokenizer.pad({key: [values[i] for i in batch]
                                         for key, values in encoded.items()}, return_tensors="pt")
            with torch.inference_mode():
                tokens = self._model(**inputs)["last_hidden_state"]
                if self._mean:
                    mask = inputs["attention_mask"].unsqueeze(-1).to(tokens.dtype)
                    pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                else:
                    pooled = tokens[:, 0]
                vectors = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
            yield batch, vectors


def _traced(model: Any, tokenizer: Any) -> Any:
    """The model as a TorchScript trace (its outputs a dict). Called from Python,
    an eager forward takes the GIL back after each of its hundreds of operators, and while API
    requests run Python in other threads each of those waits its turn: at 16 clients a batch of
    questions took 41 ms for 18 ms of CPU. The trace runs every operator without the GIL: 25 ms
    for 14. Its hidden states equal the eager ones (a difference of 0 over 30 batch shapes), and
    its vectors sentence-transformers' at any batch size and length (test_sentence_encoder).

    TorchScript is deprecated since torch 2.11 but works in the pinned 2.13; its warnings, and
    the tracer's about two values it keeps constant (no padding beyond the mask, no causal
    attention: true of every encoder), are silenced."""
    import torch
    from transformers.utils import logging as transformers_logging

    sample = dict(tokenizer(["a sample", "and a longer one"], padding=True, return_tensors="pt"))
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # the tracer reads loss_function, which warns
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            return torch.jit.trace(model, example_kwarg_inputs=sample, strict=False)
    finally:
        transformers_logging.set_verbosity(verbosity)


class _SentenceTransformersEncoder:
    def __init__(self, path: str) -> None:
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(path, device="cpu")
        self.tokenizer = self._model.tokenizer
        self.dimension = int(self._model.get_embedding_dimension())
        self.max_seq_length = int(self._model.max_seq_length)

    def batches(self, texts: list[str], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One batch of all: sentence-transformers orders and batches inside."""
        if not texts:
            return
        vectors = self._model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        yield np.arange(len(texts)), vectors.astype(np.float32, copy=False)
