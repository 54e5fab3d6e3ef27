"""The ingest queue on disk: one row per uploaded file, so an upload outlives the page, the tab
and the process that took it, and every page can show how far each file got."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from rag.sqlite_transactions import SharedDatabase

FILE_NAME = "ingest_jobs.sqlite3"  # under data_dir
JobStatus = Literal["queued", "running", "indexed", "already indexed", "failed", "cancelled"]
UNFINISHED: tuple[JobStatus, ...] = ("queued", "running")
RETRYABLE: tuple[JobStatus, ...] = ("failed", "cancelled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL, doc_id TEXT NOT NULL, status TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0, chunks INTEGER NOT NULL DEFAULT 0,
    error TEXT, warnings TEXT NOT NULL DEFAULT '[]', pid INTEGER,
    cancel INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, id);
"""
COLUMNS = ("id, source, doc_id, status, stage, done, total, chunks, error, warnings, pid, cancel,"
           " created_at, updated_at")


@dataclass(frozen=True)
class Job:
    id: int
    source: str  # the file name as uploaded
    doc_id: str  # SHA-256 of the bytes: the kept upload's name, and the document's id
    status: JobStatus
    stage: str  # what the worker is doing: "parsing", "embedding", "writing"
    done: int  # progress within the stage, e.g. chunks embedded ...
    total: int  # ... of this many
    chunks: int  # once indexed
    error: str | None  # names the file and the cause
    warnings: tuple[str, ...]
    pid: int | None  # the process running it
    cancel: bool  # asked to stop; the worker stops before it writes anything
    created_at: str
    updated_at: str

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED


def _job(row: tuple) -> Job:
    values = list(row)
    values[9] = tuple(json.loads(values[9]))
    values[11] = bool(values[11])
    return Job(*values)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class JobStore(SharedDatabase):
    """One SQLite file in WAL mode shared by the pages, the engine's worker and other
    processes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)

    def add(self, source: str, doc_id: str) -> tuple[Job, bool]:
        """A new queued job, or the unfinished one that already holds these bytes (the same
        file dropped twice is one document); the flag says whether it is new."""
        with self._write():
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE doc_id = ? AND status IN (?, ?) ORDER BY id",
                (doc_id, *UNFINISHED)).fetchall()
            if rows:
                return _job(rows[0]), False
            now = _now()
            cursor = self._db.execute(
                "INSERT INTO jobs (source, doc_id, status, created_at, updated_at)"
                " VALUES (?, ?, 'queued', ?, ?)", (source, doc_id, now, now))
            job_id = cursor.lastrowid
        return self.get(job_id), True

    def get(self, job_id: int) -> Job | None:
        rows = self._read(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def jobs(self, limit: int = 200) -> list[Job]:
        """Unfinished ones first in queue order, then the finished ones, newest first."""
        rows = self._read(
            f"SELECT {COLUMNS} FROM jobs ORDER BY status NOT IN (?, ?), "
            "CASE WHEN status IN (?, ?) THEN id ELSE -id END LIMIT ?",
            (*UNFINISHED, *UNFINISHED, limit))
        return [_job(row) for row in rows]

    def claim(self, pid: int) -> Job | None:
        """The oldest queued job, now running in process `pid`; None when none waits."""
        with self._write():
            row = self._db.execute(
                "SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE jobs SET status = 'running', pid = ?, stage = 'waiting', done = 0,"
                " total = 0, error = NULL, updated_at = ? WHERE id = ?", (pid, _now(), row[0]))
        return self.get(row[0])

    def progress(self, job_id: int, stage: str, done: int = 0, total: int = 0) -> bool:
        """Records how far a running job got; False when it was asked to stop."""
        with self._write():
            self._db.execute("UPDATE jobs SET stage = ?, done = ?, total = ?, updated_at = ?"
                             " WHERE id = ?", (stage, done, total, _now(), job_id))
            row = self._db.execute("SELECT cancel FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row is not None and not row[0]

    def finish(self, job_id: int, status: JobStatus, *, chunks: int = 0,
               error: str | None = None, warnings: tuple[str, ...] = ()) -> None:
        with self._write():
            self._db.execute(
                "UPDATE jobs SET status = ?, chunks = ?, error = ?, warnings = ?, stage = '',"
                " cancel = 0, updated_at = ? WHERE id = ?",
                (status, chunks, error, json.dumps(list(warnings)), _now(), job_id))

    def cancel(self, job_id: int) -> Job | None:
        """A queued job is cancelled at once; a running one is asked to stop, which it does
        before writing anything. Finished jobs stay as they are."""
        with self._write():
            self._db.execute("UPDATE jobs SET status = 'cancelled', updated_at = ?"
                             " WHERE id = ? AND status = 'queued'", (_now(), job_id))
            self._db.execute("UPDATE jobs SET cancel = 1, updated_at = ?"
                             " WHERE id = ? AND status = 'running'", (_now(), job_id))
        return self.get(job_id)

    def retry(self, job_id: int) -> Job | None:
        """A failed or cancelled job back in the queue, behind the others, as a new job."""
        with self._write():
            row = self._db.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ?",
                                   (job_id,)).fetchone()
            if row is None or _job(row).status not in RETRYABLE:
                return None
            job = _job(row)
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            now = _now()
            cursor = self._db.execute(
                "INSERT INTO jobs (source, doc_id, status, created_at, updated_at)"
                " VALUES (?, ?, 'queued', ?, ?)", (job.source, job.doc_id, now, now))
            queued = cursor.lastrowid
        return self.get(queued)

    def requeue(self, running: Callable[[int, int | None], bool]) -> int:
        """Running jobs whose process no longer runs them (`running(job_id, pid)` says) go back
        to the head of the queue: they wrote nothing (a document is written all at once), so
        they start again from the upload."""
        with self._write():
            rows = self._db.execute(
                "SELECT id, pid FROM jobs WHERE status = 'running'").fetchall()
            stale = [job_id for job_id, pid in rows if not running(job_id, pid)]
            for job_id in stale:
                self._db.execute(
                    "UPDATE jobs SET status = 'queued', pid = NULL, stage = '', done = 0,"
                    " total = 0, updated_at = ? WHERE id = ?", (_now(), job_id))
        return len(stale)

    def forget_finished(self) -> list[Job]:
        """Clears the finished jobs from the list; returns them so their uploads can go."""
        with self._write():
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE status NOT IN (?, ?)", UNFINISHED).fetchall()
            self._db.execute("DELETE FROM jobs WHERE status NOT IN (?, ?)", UNFINISHED)
        return [_job(row) for row in rows]

    def needs_upload(self, doc_id: str) -> bool:
        """Whether a job that may still run (or be retried) reads these bytes."""
        rows = self._read("SELECT 1 FROM jobs WHERE doc_id = ? AND status IN (?, ?, ?, ?)"
                          " LIMIT 1", (doc_id, *UNFINISHED, *RETRYABLE))
        return bool(rows)
