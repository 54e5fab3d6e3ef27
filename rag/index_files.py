"""What an index keeps beside its vectors: the settings that shaped it, and the original files.

Both make re-indexing possible: the manifest tells when the live chunking settings differ from
the ones the index was built with, and the originals are what gets chunked again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MANIFEST = "index.json"
ORIGINALS = "originals"
# Settings that change the chunks or their vectors; retrieval settings apply to any index.
INDEX_FIELDS = ("embedding_model", "chunk_size", "chunk_overlap", "chunk_strategy")


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def read_manifest(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_manifest(data_dir: Path, manifest: dict[str, Any]) -> None:
    _write_atomically(data_dir / MANIFEST, json.dumps(manifest, indent=2).encode())


def manifest_differences(stored: dict[str, Any] | None, live: dict[str, Any]) -> list[str]:
    """Human-readable, e.g. "chunk size: index 160, settings 128"; empty when they agree."""
    if stored is None:
        return []
    return [f"{field.replace('_', ' ')}: index {stored.get(field)}, settings {live[field]}"
            for field in INDEX_FIELDS if stored.get(field) != live[field]]


def keep_original(data_dir: Path, doc_id: str, data: bytes) -> bool:
    """Stored by content hash, so the same file is kept once whatever its name. True when this
    call wrote it, so a failed ingest removes only what it added."""
    path = data_dir / ORIGINALS / doc_id
    if path.exists():
        return False
    _write_atomically(path, data)
    return True


def read_original(data_dir: Path, doc_id: str) -> bytes | None:
    path = data_dir / ORIGINALS / doc_id
    return path.read_bytes() if path.is_file() else None


def remove_original(data_dir: Path, doc_id: str) -> None:
    (data_dir / ORIGINALS / doc_id).unlink(missing_ok=True)
