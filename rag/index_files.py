"""What an index keeps beside its vectors: the settings that shaped it, and the original files.

Both make re-indexing possible: the manifest tells when the live chunking settings differ from
the ones the index was built with, and the originals are what gets chunked again.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MANIFEST = "index.json"
ORIGINALS = "originals"
WRITE_LOCK = "index.lock"
# Settings that change the chunks, their vectors or where they live: a difference asks for a
# re-index. Retrieval settings apply to any index. The manifest also records the embedding
# dimension, the BM25 format and the live generation (see rag.stores).
INDEX_FIELDS = ("embedding_model", "chunk_size", "chunk_overlap", "chunk_strategy",
                "vector_store_type")


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Processes sharing a data_dir take their turn at writing the index here."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def write_atomically(path: Path, data: bytes | memoryview) -> None:
    """Temporary file, fsync, rename: a crash leaves the old file or the new one, never half of
    one. A unique temporary name: two processes writing the same file never share one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_manifest(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def manifest_version(data_dir: Path) -> tuple[int, int] | None:
    """Changes whenever the manifest is replaced (a new file each time): how a process notices
    another one's re-index with one stat per question."""
    try:
        stat = (data_dir / MANIFEST).stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def write_manifest(data_dir: Path, manifest: dict[str, Any]) -> None:
    write_atomically(data_dir / MANIFEST, json.dumps(manifest, indent=2).encode())


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
    write_atomically(path, data)
    return True


def read_original(data_dir: Path, doc_id: str) -> bytes | None:
    path = data_dir / ORIGINALS / doc_id
    return path.read_bytes() if path.is_file() else None


def remove_original(data_dir: Path, doc_id: str) -> None:
    (data_dir / ORIGINALS / doc_id).unlink(missing_ok=True)
