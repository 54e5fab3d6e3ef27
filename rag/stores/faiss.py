"""FAISS store: SQLite keeps chunks, vectors and documents; FAISS searches them in memory."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import faiss
import numpy as np

from rag.index_files import write_atomically
from rag.sqlite_transactions import immediate
from rag.types import Chunk, DocumentInfo, chunk_id

log = logging.getLogger(__name__)

DATABASE = "index.sqlite"
SNAPSHOT = "vectors.faiss"
BATCH = 10_000  # vectors read from SQLite at once when the index catches up
# In the order of Chunk's fields, so a row is _chunk(row).
CHUNK_COLUMNS = "doc_id, source, ordinal, text, char_start, char_end, page, heading, ocr"
BY_IDS = "WHERE id IN (SELECT value FROM json_each(?))"  # any number of ids, one parameter
DOCUMENT_COLUMNS = "doc_id, source, pages, chunks, size_bytes, added_at, warnings"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, pages INTEGER NOT NULL,
    chunks INTEGER NOT NULL, size_bytes INTEGER NOT NULL, added_at TEXT NOT NULL,
    warnings TEXT NOT NULL
);
-- id is the FAISS id. AUTOINCREMENT never reuses one, so an id in an old snapshot can only
-- mean the vector it had then, or a chunk deleted since.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL, source TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL,
    char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, page INTEGER, heading TEXT,
    vector BLOB NOT NULL, ocr INTEGER NOT NULL DEFAULT 0,
    UNIQUE (doc_id, ordinal)
);
"""
NO_IDS = np.empty(0, dtype=np.int64)


class FaissStore:
    """SQLite is the source of truth: a document's chunks, vectors and record commit in one
    transaction, so ingest and delete are all-or-nothing. The in-memory FAISS index follows
    it, and `flush` writes it as a snapshot, because rewriting the vector file per document
    would make ingest quadratic. Opening reconciles the snapshot with SQLite by chunk id, so a
    crash before a flush loses nothing; reads catch up the same way with commits of other
    processes (the CLI ingesting while the app serves)."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._path = path
        # One connection shared by every thread (a Streamlit server shares the store);
        # the lock serialises it and the FAISS index.
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path / DATABASE, timeout=30, check_same_thread=False,
                                   isolation_level=None)
        # A chunk row (text + 1.5 KB vector) is ~2.3 KB: 4 KB pages hold one each. Only takes
        # effect on a new file; at 100k chunks, 271 MB instead of 419 and adds 3x faster.
        self._db.execute("PRAGMA page_size=16384")
        self._db.execute("PRAGMA journal_mode=WAL")  # other processes read while one writes
        self._db.execute("PRAGMA synchronous=NORMAL")  # still atomic; fsync at checkpoints only
        self._db.executescript(SCHEMA)
        self._add_ocr_column()
        self._index = self._read_snapshot()
        self._version: int | None = None  # PRAGMA data_version last caught up with
        self._dirty = False  # the index differs from the snapshot on disk
        with self._lock:
            self._catch_up()

    def add(self, info: DocumentInfo, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        vectors = np.array(vectors, dtype=np.float32)  # a copy: normalised in place
        faiss.normalize_L2(vectors)
        rows = [(c.doc_id, c.source, c.ordinal, c.text, c.start, c.end, c.page, c.heading, c.ocr,
                 vector.tobytes()) for c, vector in zip(chunks, vectors, strict=True)]
        with self._lock:
            with self._transaction():
                self._check_dimension(vectors.shape[1])
                replaced = self._delete_rows(info.doc_id)
                self._db.executemany(
                    f"INSERT INTO chunks ({CHUNK_COLUMNS}, vector) VALUES ({', '.join('?' * 10)})",
                    rows,
                )
                ids = self._ids("SELECT id FROM chunks WHERE doc_id = ? ORDER BY id",
                                (info.doc_id,))
                # Last, so a document is listed only once every chunk is in.
                self._db.execute(
                    f"INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                    (info.doc_id, info.source, info.pages, info.chunks, info.size_bytes,
                     info.added_at, json.dumps(list(info.warnings))),
                )
            self._apply(replaced, ids, vectors)

    def nearest(self, vector: np.ndarray, k: int,
                include: Sequence[str] = ()) -> list[tuple[str, float]]:
        question = np.array(vector, dtype=np.float32, ndmin=2)
        faiss.normalize_L2(question)  # inner product of unit vectors = cosine similarity
        found: dict[str, float] = {}
        with self._lock:
            self._catch_up()
            k = min(k, self._index.ntotal if self._index is not None else 0)
            if k > 0:
                # One OpenMP thread: at 100k x 384 on 2 busy cores, two took 112 ms a query and
                # one 32 ms. The setting is per calling thread; each Streamlit session has one.
                faiss.omp_set_num_threads(1)
                scores, ids = self._index.search(question, k)
                rows = self._db.execute(f"SELECT id, doc_id, ordinal FROM chunks {BY_IDS}",
                                        (json.dumps(ids[0].tolist()),))
                known = {row[0]: chunk_id(row[1], row[2]) for row in rows}
                # An id SQLite no longer has was deleted by another process since the catch-up.
                found = {known[i]: score for i, score in zip(ids[0].tolist(),
                                                             scores[0].tolist(), strict=True)
                         if i in known}
            others = [each for each in dict.fromkeys(include) if each not in found]
            for doc_id, ordinal, stored in self._rows("doc_id, ordinal, vector", others):
                # stored vectors are unit length (add normalises them)
                found[chunk_id(doc_id, ordinal)] = float(
                    np.frombuffer(stored, dtype=np.float32) @ question[0])
        return list(found.items())

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[tuple[Chunk, np.ndarray]]:
        return [(_chunk(row[:-1]), np.frombuffer(row[-1], dtype=np.float32))
                for row in self._rows(f"{CHUNK_COLUMNS}, vector", chunk_ids)]

    def _rows(self, columns: str, chunk_ids: Sequence[str]) -> list[tuple]:
        """Those columns of the chunks with these ids, in the ids' order."""
        keys = []
        for each in chunk_ids:
            doc_id, _, ordinal = each.rpartition(":")
            if ordinal.isdigit():
                keys.append((doc_id, int(ordinal)))
        if not keys:
            return []
        with self._lock:
            return self._db.execute(
                f"SELECT {columns} FROM json_each(?) AS k JOIN chunks"
                " ON doc_id = json_extract(k.value, '$[0]')"
                " AND ordinal = json_extract(k.value, '$[1]') ORDER BY k.key",
                (json.dumps(keys),),
            ).fetchall()

    def chunks(self) -> Iterator[Chunk]:
        """Streams on a connection of its own: one statement reads one consistent snapshot, and
        the lock is not held while the caller consumes it."""
        db = sqlite3.connect(self._path / DATABASE, timeout=30)
        try:
            for row in db.execute(f"SELECT {CHUNK_COLUMNS} FROM chunks ORDER BY id"):
                yield _chunk(row)
        finally:
            db.close()

    def delete(self, doc_id: str) -> None:
        with self._lock:
            with self._transaction():
                removed = self._delete_rows(doc_id)
            self._apply(removed, NO_IDS, None)

    def get_document(self, doc_id: str) -> DocumentInfo | None:
        with self._lock:
            row = self._db.execute(f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE doc_id = ?",
                                   (doc_id,)).fetchone()
        return _info(row) if row else None

    def documents(self) -> list[DocumentInfo]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents ORDER BY added_at DESC"
            ).fetchall()
        return [_info(row) for row in rows]

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def document_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]

    def flush(self) -> None:
        """Writes the snapshot only when the index changed; atomically, so a crash mid-write
        leaves the previous one."""
        with self._lock:
            self._catch_up()
            if not self._dirty or self._index is None:
                return
            write_atomically(self._path / SNAPSHOT, memoryview(faiss.serialize_index(self._index)))
            self._dirty = False

    def drop(self) -> None:
        with self._lock:
            self._db.close()
            self._index = None
            shutil.rmtree(self._path)

    def _read_snapshot(self) -> faiss.Index | None:
        snapshot = self._path / SNAPSHOT
        if not snapshot.exists():
            return None
        try:
            return faiss.read_index(str(snapshot))
        except RuntimeError:  # only a cache of SQLite: rebuild it rather than refuse to open
            log.warning("unreadable FAISS snapshot %s: rebuilding it from %s", snapshot, DATABASE)
            return None

    def _catch_up(self) -> None:
        """Reconcile the index with SQLite by chunk id when another connection committed since
        the last time (or ever, on open). Caller holds the lock."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:
            return
        self._db.execute("BEGIN")  # one read snapshot for the ids and the vectors
        try:
            dimension = self._dimension()
            if dimension is None:
                return
            if self._index is None:
                self._index = _new_index(dimension)
            stored = self._ids("SELECT id FROM chunks")
            indexed = faiss.vector_to_array(self._index.id_map)
            stale = np.setdiff1d(indexed, stored, assume_unique=True)
            missing = np.setdiff1d(stored, indexed, assume_unique=True)
            if len(stale):
                self._index.remove_ids(stale)
            cursor = self._db.execute(
                f"SELECT id, vector FROM chunks {BY_IDS}", (json.dumps(missing.tolist()),)
            )
            while rows := cursor.fetchmany(BATCH):
                ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
                vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32)
                self._index.add_with_ids(vectors.reshape(len(rows), dimension), ids)
            self._dirty = self._dirty or bool(len(stale) or len(missing))
        finally:
            self._db.execute("COMMIT")
        self._version = version  # read before the snapshot: a commit since is caught next time

    def _apply(self, removed: np.ndarray, ids: np.ndarray, vectors: np.ndarray | None) -> None:
        """Follow a committed write in the index. Caller holds the lock."""
        if not len(removed) and not len(ids):
            return
        try:
            if len(removed) and self._index is not None:
                self._index.remove_ids(removed)
            if len(ids):
                if self._index is None:
                    self._index = _new_index(vectors.shape[1])
                self._index.add_with_ids(vectors, ids)
        except BaseException:
            self._version = None  # SQLite has the write: the next read catches up from it
            raise
        self._dirty = True

    def _add_ocr_column(self) -> None:
        """Indexes built before OCR lack the column: their chunks read as not OCR'd."""
        def missing() -> bool:
            columns = self._db.execute("PRAGMA table_info(chunks)").fetchall()
            return "ocr" not in {column[1] for column in columns}

        if missing():
            with self._transaction():
                if missing():  # another process may have added it while this one waited
                    self._db.execute("ALTER TABLE chunks ADD COLUMN ocr INTEGER NOT NULL DEFAULT 0")

    def _transaction(self) -> AbstractContextManager[None]:
        return immediate(self._db)

    def _dimension(self) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'dimension'").fetchone()
        return row[0] if row else None

    def _check_dimension(self, dimension: int) -> None:
        """The first add fixes the dimension; a vector of another size could never be searched."""
        known = self._dimension()
        if known is None:
            self._db.execute("INSERT INTO meta VALUES ('dimension', ?)", (dimension,))
        elif known != dimension:
            raise ValueError(f"vectors have {dimension} dimensions; this index holds {known}")

    def _delete_rows(self, doc_id: str) -> np.ndarray:
        """The ids of the chunks deleted, for the index to drop. Inside a transaction."""
        removed = self._ids("DELETE FROM chunks WHERE doc_id = ? RETURNING id", (doc_id,))
        self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
        return removed

    def _ids(self, sql: str, parameters: tuple = ()) -> np.ndarray:
        rows = self._db.execute(sql, parameters).fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))


def _new_index(dimension: int) -> faiss.IndexIDMap:
    """Exact search: inner product over unit vectors, keyed by the chunks' SQLite ids."""
    return faiss.IndexIDMap(faiss.IndexFlatIP(dimension))


def _chunk(row: tuple) -> Chunk:
    """A row of CHUNK_COLUMNS; SQLite keeps the ocr flag as 0 or 1."""
    return Chunk(*row[:-1], ocr=bool(row[-1]))


def _info(row: tuple) -> DocumentInfo:
    return DocumentInfo(*row[:-1], warnings=tuple(json.loads(row[-1])))
