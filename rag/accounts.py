"""Who may use a data_dir's app and API: bearer tokens for programs, password accounts for people,
and which conversations each one owns. One SQLite file, `data_dir/accounts.sqlite3`, shared by
the app, the API and the CLI that manages it.

Secrets are never stored: a token only as its SHA-256 (a 256-bit random secret needs no slow
hash), a password only as its Argon2id hash.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rag.sqlite_transactions import SharedDatabase

FILE_NAME = "accounts.sqlite3"  # under data_dir
Role = Literal["reader", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # safe in logs, tables, shells
TOKEN_PREFIX = "rag_"
SELECTOR_LENGTH = len(TOKEN_PREFIX) + 8  # the start of a token, kept to find and show it
MAX_TOKEN_LENGTH = 256
# NIST SP 800-63B-4: at least 15 characters for a password that is the only factor.
MIN_PASSWORD_LENGTH = 15
MAX_PASSWORD_LENGTH = 1024
LAST_USED_EVERY = timedelta(minutes=1)  # "last used" to the minute: no write per request


@dataclass(frozen=True)
class Principal:
    """Whoever a request or a login proved to be."""

    user_id: str  # stable for the account's life: conversations are owned by it
    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# Whoever uses an app or API that listens on loopback only while no account or token exists:
# the one person at this machine, as a single-user desktop app treats them.
LOCAL = Principal(user_id="local", name="local", role="admin")


def is_loopback(host: str) -> bool:
    """Whether an address (or the name localhost) is this machine only: 127.0.0.0/8, ::1."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: Role
    prefix: str  # the token's first characters, to tell which one leaked; never the secret
    created_at: str
    last_used_at: str | None


@dataclass(frozen=True)
class UserInfo:
    name: str
    role: Role
    created_at: str
    last_login_at: str | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError("a name is 1-64 letters, digits or . _ @ -, starting with a letter or "
                         "digit")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


TOKEN_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY, user_id TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
    prefix TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL, last_used_at TEXT
);
CREATE INDEX IF NOT EXISTS tokens_by_prefix ON tokens (prefix);
"""


class TokenStore(SharedDatabase):
    """API bearer tokens. Each is shown once, when created; revoking one takes effect at the
    next request of every process."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, TOKEN_SCHEMA)

    def create(self, name: str, role: Role) -> str:
        """The new token's secret: this is the only time anyone sees it. ValueError for a bad
        name or role, or a name already taken."""
        _check_name(name)
        _check_role(role)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._write():
            if self._db.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                raise ValueError(f"a token named {name} exists: revoke it first")
            self._db.execute(
                "INSERT INTO tokens (name, user_id, role, prefix, digest, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, f"tok_{uuid.uuid4().hex}", role, secret[:SELECTOR_LENGTH],
                 _digest(secret), _now()))
        return secret

    def list(self) -> list[TokenInfo]:
        rows = self._read("SELECT name, role, prefix, created_at, last_used_at FROM tokens"
                          " ORDER BY name")
        return [TokenInfo(*row) for row in rows]

    def revoke(self, name: str) -> bool:
        """False when no token has that name."""
        with self._write():
            return self._db.execute("DELETE FROM tokens WHERE name = ?", (name,)).rowcount > 0

    def exist(self) -> bool:
        return bool(self._read("SELECT 1 FROM tokens LIMIT 1"))

    def verify(self, secret: str) -> Principal | None:
        """The token's principal, or None. The row is found by the token's first characters and
        its digest compared in constant time, so response times say nothing about the rest."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > MAX_TOKEN_LENGTH:
            return None
        digest = _digest(secret)
        rows = self._read("SELECT name, user_id, role, digest, last_used_at FROM tokens"
                          " WHERE prefix = ?", (secret[:SELECTOR_LENGTH],))
        found = None
        for name, user_id, role, stored, last_used in rows:
            if hmac.compare_digest(stored, digest):
                found = Principal(user_id, name, role), last_used
        if found is None:
            return None
        principal, last_used = found
        now = datetime.now(UTC)
        if last_used is None or now - datetime.fromisoformat(last_used) >= LAST_USED_EVERY:
            with self._write():
                self._db.execute("UPDATE tokens SET last_used_at = ? WHERE user_id = ?",
                                 (now.isoformat(timespec="microseconds"), principal.user_id))
        return principal


USER_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, user_id TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
    password_hash TEXT NOT NULL, created_at TEXT NOT NULL, last_login_at TEXT
);
"""


@cache
def _hasher() -> PasswordHasher:
    """Argon2id with the RFC 9106 low-memory profile (64 MiB, 3 passes)."""
    return PasswordHasher()


@cache
def _unknown_user_hash() -> str:
    """Checked against for a name that has no account, so a login takes as long either way
    and its timing does not tell which names exist."""
    return _hasher().hash(secrets.token_urlsafe(32))


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} "
                         "characters")


class PasswordStore(SharedDatabase):
    """Password accounts for signing in to the app."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, USER_SCHEMA)

    def add(self, name: str, role: Role, password: str) -> None:
        """ValueError for a bad name, role or password, or a name already taken."""
        _check_name(name)
        _check_role(role)
        _check_password(password)
        hashed = _hasher().hash(password)  # before the write lock: hashing takes a while
        with self._write():
            if self._db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise ValueError(f"a user named {name} exists")
            self._db.execute(
                "INSERT INTO users (name, user_id, role, password_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, f"usr_{uuid.uuid4().hex}", role, hashed, _now()))

    def set_password(self, name: str, password: str) -> bool:
        """False when no user has that name; the user id, and so the conversations, stay."""
        _check_password(password)
        hashed = _hasher().hash(password)
        with self._write():
            return self._db.execute("UPDATE users SET password_hash = ? WHERE name = ?",
                                    (hashed, name)).rowcount > 0

    def remove(self, name: str) -> bool:
        with self._write():
            return self._db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount > 0

    def list(self) -> list[UserInfo]:
        rows = self._read("SELECT name, role, created_at, last_login_at FROM users ORDER BY name")
        return [UserInfo(*row) for row in rows]

    def exist(self) -> bool:
        return bool(self._read("SELECT 1 FROM users LIMIT 1"))

    def current(self, user_id: str) -> Principal | None:
        """The account as it is now: None once removed, its new role once changed."""
        rows = self._read("SELECT name, role FROM users WHERE user_id = ?", (user_id,))
        return Principal(user_id, *rows[0]) if rows else None

    def verify(self, name: str, password: str) -> Principal | None:
        """The user's principal when the password is theirs, else None (whichever was wrong).
        A hash made with older parameters is replaced on a successful login."""
        rows = self._read("SELECT user_id, role, password_hash FROM users WHERE name = ?",
                          (name,))
        hasher = _hasher()
        if not rows or len(password) > MAX_PASSWORD_LENGTH:
            try:
                hasher.verify(_unknown_user_hash(), password)
            except VerificationError:
                pass
            return None
        user_id, role, hashed = rows[0]
        try:
            hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return None
        rehashed = hasher.hash(password) if hasher.check_needs_rehash(hashed) else hashed
        with self._write():
            self._db.execute(
                "UPDATE users SET last_login_at = ?, password_hash = ? WHERE user_id = ?",
                (_now(), rehashed, user_id))
        return Principal(user_id, name, role)


OWNER_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversation_owners (
    conversation_id TEXT PRIMARY KEY, user_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversation_owners (user_id);
"""


class Ownership(SharedDatabase):
    """Which principal a conversation belongs to. A conversation with no owner (asked before
    accounts existed) is an admin's to see; one whose owner was removed stays with that
    removed id, so a new account of the same name never inherits it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, OWNER_SCHEMA)

    def claim(self, conversation_id: str, user_id: str) -> None:
        with self._write():
            self._db.execute("INSERT OR REPLACE INTO conversation_owners VALUES (?, ?)",
                             (conversation_id, user_id))

    def owner(self, conversation_id: str) -> str | None:
        rows = self._read("SELECT user_id FROM conversation_owners WHERE conversation_id = ?",
                          (conversation_id,))
        return rows[0][0] if rows else None

    def owned_by(self, user_id: str) -> set[str]:
        rows = self._read("SELECT conversation_id FROM conversation_owners WHERE user_id = ?",
                          (user_id,))
        return {row[0] for row in rows}

    def forget(self, conversation_id: str) -> None:
        with self._write():
            self._db.execute("DELETE FROM conversation_owners WHERE conversation_id = ?",
                             (conversation_id,))


class Accounts:
    """The three stores of one accounts file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tokens = TokenStore(path)
        self.users = PasswordStore(path)
        self.owners = Ownership(path)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Accounts:
        return cls(data_dir / FILE_NAME)

    def close(self) -> None:
        for store in (self.tokens, self.users, self.owners):
            store.close()
