"""Stored conversations: a reload, a restart or a second process sees every question and answer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from rag.sqlite_transactions import SharedDatabase
from rag.types import Hit

FILE_NAME = "conversations.sqlite3"  # under data_dir; the caller passes the full path
NEW_CHAT = "New chat"
TITLE_LENGTH = 60

Status = Literal["queued", "streaming", "done", "refused", "failed", "interrupted"]
Role = Literal["user", "assistant"]
UNFINISHED = ("queued", "streaming")

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, documents TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_update ON conversations (updated_at);
-- AUTOINCREMENT never reuses an id: a worker still holding the id of a deleted answer can
-- never write into a newer message.
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role TEXT NOT NULL, content TEXT NOT NULL, status TEXT NOT NULL,
    created_at TEXT NOT NULL, finished_at TEXT, searched TEXT,
    sources TEXT NOT NULL, cited TEXT NOT NULL, note TEXT, meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id, id);
"""
CONVERSATION_COLUMNS = "id, title, created_at, updated_at, documents"
MESSAGE_COLUMNS = ("id, conversation_id, role, content, status, created_at, finished_at,"
                   " searched, sources, cited, note, meta")
NEWEST_FIRST = "ORDER BY updated_at DESC, rowid DESC"
# What update_message may change.
UPDATABLE = frozenset({"content", "status", "searched", "sources", "cited", "note", "meta",
                       "finished_at"})


@dataclass(frozen=True)
class Conversation:
    id: str  # uuid4 hex
    title: str  # from the first question unless renamed
    created_at: str  # ISO 8601 UTC
    updated_at: str  # last message or rename
    documents: tuple[str, ...]  # doc ids the conversation is scoped to; () = all documents


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: str
    role: Role
    content: str  # the question / the answer text as it finally stood
    status: Status  # user messages: "done"
    created_at: str
    finished_at: str | None
    searched: str | None  # assistant: the question actually searched
    sources: tuple[Hit, ...]  # assistant: the sources shown, in order, with their scores
    cited: tuple[int, ...]  # assistant: 1-based numbers of the sources the answer cited
    note: str | None  # assistant: refusal note / failure line / "attributed by similarity"
    meta: dict[str, Any]  # anything else JSON-able (attributed, overview, ...)


def title_from(question: str) -> str:
    """The question's first line, cut on a word boundary so the sidebar stays one line."""
    line = next((line.strip() for line in question.splitlines() if line.strip()), "")
    line = " ".join(line.split())
    if not line:
        return NEW_CHAT
    if len(line) <= TITLE_LENGTH:
        return line
    cut = line[:TITLE_LENGTH]
    if line[TITLE_LENGTH] != " " and " " in cut:
        cut = cut.rsplit(" ", 1)[0]  # a word cut in half reads worse than a shorter title
    return cut.rstrip(" ,;:.-") + "…"


class ConversationStore(SharedDatabase):
    """One SQLite file in WAL mode, shared by the app's script threads, the engine's answer
    worker and other processes (the CLI)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)

    def create(self, title: str = NEW_CHAT, documents: Sequence[str] = ()) -> Conversation:
        with self._write():
            now = self._stamp()
            conversation = Conversation(uuid.uuid4().hex, title, now, now, tuple(documents))
            self._db.execute(
                f"INSERT INTO conversations ({CONVERSATION_COLUMNS}) VALUES (?,?,?,?,?)",
                (conversation.id, title, now, now, json.dumps(list(documents))),
            )
        return conversation

    def get(self, conversation_id: str) -> Conversation | None:
        rows = self._read(f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?",
                          (conversation_id,))
        return _conversation(rows[0]) if rows else None

    def find(self, name_or_id: str) -> Conversation | None:
        """By id, else the newest conversation with exactly that title (the CLI's NAME)."""
        found = self.get(name_or_id)
        if found is None:
            rows = self._read(f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE title = ?"
                              f" {NEWEST_FIRST} LIMIT 1", (name_or_id,))
            found = _conversation(rows[0]) if rows else None
        return found

    def list(self) -> list[Conversation]:
        rows = self._read(f"SELECT {CONVERSATION_COLUMNS} FROM conversations {NEWEST_FIRST}")
        return [_conversation(row) for row in rows]

    def rename(self, conversation_id: str, title: str) -> None:
        with self._write():
            self._update_conversation(conversation_id, title=title, updated_at=self._stamp())

    def set_documents(self, conversation_id: str, documents: Sequence[str]) -> None:
        with self._write():
            self._update_conversation(conversation_id, documents=json.dumps(list(documents)))

    def delete(self, conversation_id: str) -> None:
        """Its messages go with it (ON DELETE CASCADE). Deleting what is gone is no error."""
        with self._write():
            self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def add_message(
        self,
        conversation_id: str,
        role: Role,
        content: str,
        *,
        status: Status = "done",
        searched: str | None = None,
        sources: Sequence[Hit] = (),
        cited: Sequence[int] = (),
        note: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Message:
        """Also marks the conversation updated, and titles a "New chat" by its first question.
        Raises KeyError when the conversation does not exist (e.g. deleted in another tab)."""
        _check("role", role, Role)
        _check("status", status, Status)
        with self._write():
            now = self._stamp()
            changes: dict[str, Any] = {"updated_at": now}
            conversation = self._db.execute("SELECT title FROM conversations WHERE id = ?",
                                            (conversation_id,)).fetchone()
            if role == "user" and conversation is not None and conversation[0] == NEW_CHAT:
                changes["title"] = title_from(content)
            self._update_conversation(conversation_id, **changes)
            finished = now if status not in UNFINISHED else None
            cursor = self._db.execute(
                f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?)",
                (conversation_id, role, content, status, now, finished, searched,
                 _encode("sources", sources), _encode("cited", cited), note,
                 _encode("meta", meta)),
            )
            row = self._db.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?",
                                   (cursor.lastrowid,)).fetchone()
        return _message(row)

    def update_message(self, message_id: int, **fields: Any) -> None:
        """Fields: content, status, searched, sources, cited, note, meta, finished_at. A final
        status stamps finished_at unless given. Raises KeyError for a message that is gone."""
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise TypeError(f"cannot update {', '.join(sorted(unknown))}")
        if not fields:
            return
        if "status" in fields:
            _check("status", fields["status"], Status)
        with self._write():
            if fields.get("status") not in (None, *UNFINISHED) and "finished_at" not in fields:
                fields["finished_at"] = self._stamp()
            assignments = ", ".join(f"{name} = ?" for name in fields)
            values = [_encode(name, value) for name, value in fields.items()]
            cursor = self._db.execute(f"UPDATE messages SET {assignments} WHERE id = ?",
                                      (*values, message_id))
            if cursor.rowcount == 0:
                raise KeyError(f"no message {message_id}")

    def messages(self, conversation_id: str) -> list[Message]:
        """Oldest first."""
        rows = self._read(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?"
                          " ORDER BY id", (conversation_id,))
        return [_message(row) for row in rows]

    def mark_interrupted(self, keep: Callable[[Message], bool] = lambda message: False) -> int:
        """At start-up: answers a previous process left queued or streaming will never finish.
        Their text so far is kept. `keep` spares the answers another running process (the app
        beside a CLI) is still writing. Returns how many were marked."""
        with self._write():
            rows = self._db.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE role = 'assistant'"
                " AND status IN (?, ?)", UNFINISHED).fetchall()
            stale = [message.id for message in map(_message, rows) if not keep(message)]
            stamp = self._stamp()
            self._db.executemany(
                "UPDATE messages SET status = 'interrupted', finished_at = ? WHERE id = ?",
                [(stamp, message_id) for message_id in stale])
        return len(stale)

    def _update_conversation(self, conversation_id: str, **columns: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        cursor = self._db.execute(f"UPDATE conversations SET {assignments} WHERE id = ?",
                                  (*columns.values(), conversation_id))
        if cursor.rowcount == 0:
            raise KeyError(f"no conversation {conversation_id}")

    def _stamp(self) -> str:
        """Now, but later than every stamp already stored, whichever process wrote it: inside
        the write transaction, so "newest first" holds even within one clock tick."""
        now = datetime.now(UTC)
        latest = self._db.execute("SELECT max(updated_at) FROM conversations").fetchone()[0]
        if latest is not None and now <= datetime.fromisoformat(latest):
            now = datetime.fromisoformat(latest) + timedelta(microseconds=1)
        return now.isoformat(timespec="microseconds")


def _check(name: str, value: str, allowed: Any) -> None:
    if value not in get_args(allowed):
        raise ValueError(f"{name} must be one of {', '.join(get_args(allowed))}, not {value!r}")


def _encode(name: str, value: Any) -> Any:
    if name == "sources":
        return json.dumps([hit.to_dict() for hit in value])
    if name == "cited":
        return json.dumps([int(number) for number in value])
    if name == "meta":
        return json.dumps(value or {})
    return value


def _conversation(row: tuple) -> Conversation:
    *head, documents = row
    return Conversation(*head, documents=tuple(json.loads(documents)))


def _message(row: tuple) -> Message:
    (id_, conversation_id, role, content, status, created_at, finished_at, searched, sources,
     cited, note, meta) = row
    return Message(
        id=id_, conversation_id=conversation_id, role=role, content=content, status=status,
        created_at=created_at, finished_at=finished_at, searched=searched,
        sources=tuple(Hit.from_dict(hit) for hit in json.loads(sources)),
        cited=tuple(json.loads(cited)), note=note, meta=json.loads(meta),
    )
