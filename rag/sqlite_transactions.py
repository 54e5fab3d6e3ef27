"""SQLite files that several threads and processes share: how to open one, and one write
transaction on it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def connect(path: Path, schema: str) -> sqlite3.Connection:
    """One connection for every thread of a process (the caller serialises it with a lock), in
    WAL mode so readers never wait for a writer, and a busy timeout so a second writer waits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA synchronous=NORMAL")  # still atomic; fsync at checkpoints only
    db.executescript(schema)  # idempotent when every statement is IF NOT EXISTS
    return db


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """IMMEDIATE takes the write lock up front, so two writers wait instead of failing; any
    error rolls the whole transaction back."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class SharedDatabase:
    """One connection per process, serialised by a lock; each write one IMMEDIATE
    transaction, which takes SQLite's write lock before reading, so two processes never
    deadlock upgrading a read, and the busy timeout makes the second wait instead of failing."""

    def __init__(self, path: Path, schema: str) -> None:
        self._lock = threading.RLock()  # serialises the one connection
        self._db = connect(path, schema)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        with self._lock, immediate(self._db):
            yield

    def _read(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()
