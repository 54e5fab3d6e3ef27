"""Settings a user saved in the app, layered between .env and the environment.

Precedence, lowest first: defaults, `.env`, the saved file, environment variables. An operator's
explicit RAG_* variable therefore always wins, and the app can say where each value came from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values

from rag.config import Settings

SAVED_FILE = "settings.json"
# data_dir locates the saved file itself; the key is a secret and stays in the environment/.env.
NOT_SAVED = frozenset({"data_dir", "llm_api_key", "embedding_api_key", "chroma_token"})
ENV_NAMES = {"llm_api_key": ("RAG_LLM_API_KEY", "OPENAI_API_KEY")}

Source = Literal["environment", ".env", "saved", "default"]


def _env_names(field: str) -> tuple[str, ...]:
    return ENV_NAMES.get(field, (f"RAG_{field.upper()}",))


def saved_path(data_dir: Path) -> Path:
    return data_dir / SAVED_FILE


def read_saved(data_dir: Path) -> dict[str, Any]:
    path = saved_path(data_dir)
    if not path.is_file():
        return {}
    values = json.loads(path.read_text(encoding="utf-8"))
    return {k: v for k, v in values.items() if k in Settings.model_fields and k not in NOT_SAVED}


def from_environment(field: str) -> bool:
    return any(name in os.environ for name in _env_names(field))


def load_settings(**overrides: Any) -> Settings:
    """Settings as the app runs them: saved values apply unless the environment sets the field."""
    base = Settings(**overrides)
    saved = {k: v for k, v in read_saved(base.data_dir).items()
             if not from_environment(k) and k not in overrides}
    return Settings(**{**saved, **overrides, "data_dir": base.data_dir}) if saved else base


def save_settings(data_dir: Path, values: Mapping[str, Any]) -> Settings:
    """Validate, then write atomically; returns the settings now in force. Raises
    pydantic.ValidationError for a bad value, and ValueError for a field that cannot be saved."""
    refused = set(values) & NOT_SAVED
    if refused:
        raise ValueError(f"not saved in the app: {', '.join(sorted(refused))}")
    merged = {**read_saved(data_dir), **values}
    # Validate what load_settings will build: the saved values under the environment's.
    Settings(**{k: v for k, v in merged.items() if not from_environment(k)}, data_dir=data_dir)
    path = saved_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(merged, indent=2, default=str), encoding="utf-8")
    os.replace(temporary, path)
    return load_settings(data_dir=data_dir)


def value_sources(data_dir: Path, env_file: Path = Path(".env")) -> dict[str, Source]:
    """Where each field's live value comes from, for the Settings page."""
    saved = read_saved(data_dir)
    dotenv = {k for k, v in dotenv_values(env_file).items() if v is not None} \
        if env_file.is_file() else set()
    sources: dict[str, Source] = {}
    for field in Settings.model_fields:
        if from_environment(field):
            sources[field] = "environment"
        elif field in saved:
            sources[field] = "saved"
        elif any(name in dotenv for name in _env_names(field)):
            sources[field] = ".env"
        else:
            sources[field] = "default"
    return sources
