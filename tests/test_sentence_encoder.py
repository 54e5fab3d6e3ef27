"""The local encoder on plain transformers against sentence-transformers itself, the reference it
stands in for, on real chunks of a benchmark document."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.chunking import chunk_document
from rag.config import DEFAULT_EMBEDDING_MODEL
from rag.embeddings import resolve_model
from rag.lexical import indexed_text
from rag.loaders import load
from rag.sentence_encoder import _plain_recipe, _SentenceTransformersEncoder, encode, load_encoder


def test_plain_transformers_give_the_vectors_sentence_transformers_gives(embedder, bench_data):
    path = bench_data / "docs" / "text" / "rfc7525.txt"
    chunks = chunk_document(load(path.read_bytes(), path.name), embedder, size=160, overlap=24)
    texts = [indexed_text(chunk) for chunk in chunks[:48]]
    texts += ["", "  padded  ", "overflow " * 600, "Ünïcödé, emoji 🙂 and CJK 漢字"]
    model = resolve_model(DEFAULT_EMBEDDING_MODEL)

    plain = load_encoder(model)
    reference = _SentenceTransformersEncoder(model)
    assert not isinstance(plain, _SentenceTransformersEncoder), "MiniLM's recipe is the plain one"
    assert (plain.dimension, plain.max_seq_length) == (reference.dimension, 256)
    theirs = encode(reference, texts, 16)
    for batch_size in (16, 5, 1):  # the model is traced once: other shapes must not change it
        ours = encode(plain, texts, batch_size)
        assert ours.dtype == np.float32 and ours.shape == (len(texts), 384)
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=f"batches of {batch_size}")
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert encode(plain, [], 16).shape == encode(reference, [], 16).shape == (0, 384)


def _folder(tmp_path: Path, modules: list[str], pooling: dict, lower: bool = False) -> Path:
    """The recipe files alone: deciding the path reads no weights."""
    kinds = {"T": "Transformer", "P": "Pooling", "N": "Normalize", "D": "Dense"}
    paths = {"T": "", "P": "1_Pooling", "N": "2_Normalize", "D": "2_Dense"}
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": i, "name": str(i), "path": paths[m], "type": f"sentence_transformers.models.{kinds[m]}"}
        for i, m in enumerate(modules)]))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (tmp_path / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 128, "do_lower_case": lower}))
    return tmp_path


MEAN = {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True}
CLS = {"word_embedding_dimension": 384, "pooling_mode_cls_token": True}


@pytest.mark.parametrize(("modules", "pooling", "lower", "expected"), [
    ("TPN", MEAN, False, {"mean": True, "max_seq_length": 128}),
    ("TP", CLS, False, {"mean": False, "max_seq_length": 128}),
    ("TPDN", MEAN, False, None),  # a Dense layer: sentence-transformers runs it
    ("TPN", {**MEAN, "pooling_mode_max_tokens": True}, False, None),
    ("TPN", MEAN, True, None),  # lower-casing
])
def test_only_the_common_recipe_runs_on_plain_transformers(tmp_path, modules, pooling, lower,
                                                          expected):
    assert _plain_recipe(_folder(tmp_path, list(modules), pooling, lower)) == expected


def test_a_folder_without_a_sentence_transformers_recipe_is_left_to_the_library(tmp_path):
    assert _plain_recipe(tmp_path) is None
