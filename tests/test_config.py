"""Settings come from RAG_* variables and .env, and each bad value gets one clear message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rag.config import PACKAGED_MODEL_DECLINE, Settings, describe_validation_error


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("RAG_LLM_BASE_URL", "RAG_LLM_API_KEY", "OPENAI_API_KEY", "RAG_CHUNK_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout


def error_of(**values) -> str:
    with pytest.raises(ValidationError) as raised:
        Settings(**values)
    return describe_validation_error(raised.value)


def test_environment_and_dotenv_are_read(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("RAG_TOP_K=7\nRAG_CHUNK_STRATEGY=semantic\n")
    monkeypatch.setenv("RAG_TOP_K", "9")
    settings = Settings()
    assert settings.top_k == 9  # the environment wins over .env
    assert settings.chunk_strategy == "semantic"


def test_openai_api_key_is_accepted_and_switches_to_the_remote_llm(monkeypatch):
    assert not Settings().uses_remote_llm
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    settings = Settings()
    assert settings.llm_api_key.get_secret_value() == "sk-test-secret"
    assert settings.uses_remote_llm
    assert "sk-test-secret" not in repr(settings)


def test_base_url_alone_switches_to_the_remote_llm():
    assert Settings(llm_base_url="http://127.0.0.1:8080/v1").uses_remote_llm


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"chunk_size": 100, "chunk_overlap": 100}, "chunk_overlap (100) must be smaller than chunk_size"),
        ({"chunk_size": 300}, "exceeds the input limit"),
        ({"similarity_threshold": 1.5}, "similarity_threshold: Input should be less than or equal to 1"),
        ({"similarity_threshold": -2}, "similarity_threshold: Input should be greater than or equal to -1"),
        ({"top_k": 0}, "top_k"),
        ({"chunk_strategy": "words"}, "chunk_strategy"),
        ({"rerank": True, "reranker": "cross-encoder"}, "needs reranker_model"),
    ],
)
def test_bad_values_are_named(values, expected):
    assert expected in error_of(**values)


def test_a_bad_value_never_echoes_the_api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    assert "sk-must-not-leak" not in error_of(chunk_size=50, chunk_overlap=60)


def test_unknown_models_are_not_limited_here():
    # Their limit is read off the loaded model, and the pipeline clamps with a warning.
    assert Settings(embedding_model="/models/other", chunk_size=500).chunk_size == 500


def test_the_decline_cut_off_holds_for_the_model_it_was_calibrated_on(tmp_path):
    assert Settings().decline_cutoff == PACKAGED_MODEL_DECLINE
    assert Settings(llm_gguf=tmp_path / "other.gguf").decline_cutoff == 1.0  # off
    assert Settings(llm_base_url="http://127.0.0.1:1/v1").decline_cutoff == 1.0
    assert Settings(llm_base_url="http://127.0.0.1:1/v1",
                    decline_probability=0.4).decline_cutoff == 0.4
