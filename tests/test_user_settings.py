"""Saved settings: defaults < .env < saved file < environment, and where each value came from."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from rag.user_settings import load_settings, save_settings, saved_path, value_sources


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    for name in ("RAG_TOP_K", "RAG_SIMILARITY_THRESHOLD", "RAG_CHUNK_SIZE", "RAG_DATA_DIR",
                 "OPENAI_API_KEY", "RAG_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def test_saved_values_survive_a_restart(isolated):
    save_settings(isolated, {"similarity_threshold": 0.55, "top_k": 8})
    reloaded = load_settings(data_dir=isolated)
    assert (reloaded.similarity_threshold, reloaded.top_k) == (0.55, 8)
    assert json.loads(saved_path(isolated).read_text()) == {"similarity_threshold": 0.55, "top_k": 8}


def test_saved_file_beats_dotenv_and_the_environment_beats_both(isolated, monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("RAG_TOP_K=3\nRAG_CHUNK_SIZE=128\nRAG_CHUNK_OVERLAP=16\n")
    save_settings(isolated, {"top_k": 8, "similarity_threshold": 0.5})
    monkeypatch.setenv("RAG_SIMILARITY_THRESHOLD", "0.3")
    settings = load_settings(data_dir=isolated)
    assert settings.top_k == 8  # saved over .env
    assert settings.similarity_threshold == 0.3  # environment over saved
    assert settings.chunk_size == 128  # .env over default
    sources = value_sources(isolated, env_file=tmp_path / ".env")
    assert sources["top_k"] == "saved"
    assert sources["similarity_threshold"] == "environment"
    assert sources["chunk_size"] == ".env"
    assert sources["fetch_multiplier"] == "default"


def test_bad_values_are_refused_before_anything_is_written(isolated):
    with pytest.raises(ValidationError):
        save_settings(isolated, {"chunk_size": 64, "chunk_overlap": 64})
    assert not saved_path(isolated).exists()


def test_the_key_and_the_data_dir_are_never_saved(isolated):
    with pytest.raises(ValueError, match="llm_api_key"):
        save_settings(isolated, {"llm_api_key": "sk-should-not-be-written"})
    with pytest.raises(ValueError, match="data_dir"):
        save_settings(isolated, {"data_dir": "/elsewhere"})
    assert not saved_path(isolated).exists()


def test_a_save_that_would_clash_with_the_environment_is_refused(isolated, monkeypatch):
    save_settings(isolated, {"chunk_size": 200})
    monkeypatch.setenv("RAG_CHUNK_SIZE", "64")
    with pytest.raises(ValidationError):
        save_settings(isolated, {"chunk_overlap": 100})  # fine with 200, not with the env's 64
    assert load_settings(data_dir=isolated).chunk_size == 64
