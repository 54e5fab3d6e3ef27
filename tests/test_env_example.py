""".env.example documents every setting with its real default, so copying it changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

from rag.config import Settings

EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"


def documented() -> dict[str, str]:
    """Variables set in the file, and those shown commented out (optional, no default)."""
    pattern = re.compile(r"^#?\s*(RAG_[A-Z_]+)=(\S*)", re.MULTILINE)
    return {name: value for name, value in pattern.findall(EXAMPLE.read_text())}


def test_every_setting_is_documented():
    names = {f"RAG_{field.upper()}" for field in Settings.model_fields}
    assert names - set(documented()) == set()
    assert set(documented()) - names == set(), "documents a setting that does not exist"


def test_documented_defaults_are_the_real_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    defaults = Settings()
    active = {k: v for k, v in documented().items()
              if re.search(rf"^{k}=", EXAMPLE.read_text(), re.MULTILINE)}
    for name, value in active.items():
        field = name.removeprefix("RAG_").lower()
        default = getattr(defaults, field)
        if isinstance(default, float):
            assert default == float(value), name
        else:
            assert str(default).lower() == value.lower(), name
