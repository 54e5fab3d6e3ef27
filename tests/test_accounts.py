"""Accounts as the API, the app and the CLI use them: a real SQLite file per test, real Argon2
hashes, and `python -m rag tokens|users` as separate processes. No model is loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rag.accounts import FILE_NAME, MIN_PASSWORD_LENGTH, Accounts
from tests.conftest import REPO
from tests.processes import cli_env

PASSWORD = "correct horse battery staple"


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    return Accounts.in_data_dir(tmp_path)


def stored_bytes(data_dir: Path) -> bytes:
    """Everything the accounts file holds on disk, its write-ahead log included."""
    return b"".join(path.read_bytes() for path in data_dir.glob(f"{FILE_NAME}*"))


def test_a_token_is_shown_once_and_stored_only_as_its_digest(accounts, tmp_path):
    secret = accounts.tokens.create("ci", "admin")
    assert secret.startswith("rag_") and len(secret) >= 40
    assert accounts.tokens.create("other", "reader") != secret
    assert secret.encode() not in stored_bytes(tmp_path)
    [listed, _] = accounts.tokens.list()
    assert (listed.name, listed.role, listed.last_used_at) == ("ci", "admin", None)
    assert secret.startswith(listed.prefix) and len(listed.prefix) < len(secret) // 3
    assert secret not in repr(accounts.tokens.list())


def test_a_token_verifies_as_its_principal_until_revoked(accounts, tmp_path):
    secret = accounts.tokens.create("ci", "reader")
    principal = accounts.tokens.verify(secret)
    assert principal is not None and (principal.name, principal.role) == ("ci", "reader")
    assert not principal.is_admin
    assert accounts.tokens.list()[0].last_used_at is not None
    for wrong in (secret[:-1], secret + "x", secret[:-1] + ("A" if secret[-1] != "A" else "B"),
                  "", "rag_", secret.removeprefix("rag_"), secret.upper()):
        assert accounts.tokens.verify(wrong) is None, wrong

    other_process = Accounts.in_data_dir(tmp_path)  # its own connection, as another process has
    assert other_process.tokens.verify(secret) == principal
    assert accounts.tokens.revoke("ci")
    assert other_process.tokens.verify(secret) is None
    assert not accounts.tokens.revoke("ci")
    assert not accounts.tokens.exist()


def test_a_token_created_again_under_its_name_is_another_principal(accounts):
    first = accounts.tokens.verify(accounts.tokens.create("ci", "reader"))
    with pytest.raises(ValueError, match="exists"):
        accounts.tokens.create("ci", "admin")
    accounts.tokens.revoke("ci")
    second = accounts.tokens.verify(accounts.tokens.create("ci", "reader"))
    assert first is not None and second is not None and first.user_id != second.user_id


@pytest.mark.parametrize("name", ["", "a b", "../x", "x" * 65, "-x", "ä", "a\nb"])
def test_names_are_plain(accounts, name):
    with pytest.raises(ValueError, match="name"):
        accounts.tokens.create(name, "reader")


def test_roles_are_reader_or_admin(accounts):
    with pytest.raises(ValueError, match="role"):
        accounts.tokens.create("ci", "root")
    with pytest.raises(ValueError, match="role"):
        accounts.users.add("alice", "owner", PASSWORD)


def test_a_password_account_signs_in_with_its_password_only(accounts, tmp_path):
    accounts.users.add("alice", "admin", PASSWORD)
    stored = stored_bytes(tmp_path)
    assert PASSWORD.encode() not in stored and b"$argon2id$" in stored
    principal = accounts.users.verify("alice", PASSWORD)
    assert principal is not None and principal.is_admin and principal.name == "alice"
    assert accounts.users.verify("alice", PASSWORD + "!") is None
    assert accounts.users.verify("bob", PASSWORD) is None
    [listed] = accounts.users.list()
    assert (listed.name, listed.role) == ("alice", "admin") and listed.last_login_at
    with pytest.raises(ValueError, match="exists"):
        accounts.users.add("alice", "reader", PASSWORD)


def test_a_new_password_keeps_the_user_and_drops_the_old_one(accounts):
    accounts.users.add("alice", "reader", PASSWORD)
    before = accounts.users.verify("alice", PASSWORD)
    assert accounts.users.set_password("alice", PASSWORD[::-1])
    assert accounts.users.verify("alice", PASSWORD) is None
    after = accounts.users.verify("alice", PASSWORD[::-1])
    assert before is not None and after == before, "the same user id owns the same conversations"
    assert not accounts.users.set_password("bob", PASSWORD)


def test_short_passwords_are_refused(accounts):
    with pytest.raises(ValueError, match=str(MIN_PASSWORD_LENGTH)):
        accounts.users.add("alice", "reader", "x" * (MIN_PASSWORD_LENGTH - 1))
    assert accounts.users.list() == []


def test_a_removed_user_cannot_sign_in_and_a_new_one_of_that_name_owns_nothing(accounts):
    accounts.users.add("alice", "reader", PASSWORD)
    alice = accounts.users.verify("alice", PASSWORD)
    accounts.owners.claim("c1", alice.user_id)
    assert accounts.users.remove("alice") and not accounts.users.remove("alice")
    assert accounts.users.verify("alice", PASSWORD) is None
    accounts.users.add("alice", "reader", PASSWORD)
    again = accounts.users.verify("alice", PASSWORD)
    assert again.user_id != alice.user_id and accounts.owners.owned_by(again.user_id) == set()


def test_conversations_have_one_owner(accounts):
    accounts.owners.claim("c1", "u1")
    accounts.owners.claim("c2", "u1")
    accounts.owners.claim("c3", "u2")
    assert accounts.owners.owned_by("u1") == {"c1", "c2"}
    assert (accounts.owners.owner("c3"), accounts.owners.owner("c4")) == ("u2", None)
    accounts.owners.forget("c1")
    assert accounts.owners.owned_by("u1") == {"c2"}


# --- the CLI, as separate processes ---------------------------------------------------------

def run_cli(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag", "--data-dir", str(data_dir), *args], input=stdin,
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120, check=False,
    )


def test_cli_creates_lists_and_revokes_tokens(tmp_path):
    created = run_cli(tmp_path, "tokens", "create", "ci", "--role", "admin")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert created.stdout == secret + "\n", "stdout is the secret alone, for scripts"
    assert "not shown again" in created.stderr
    principal = Accounts.in_data_dir(tmp_path).tokens.verify(secret)
    assert principal is not None and principal.role == "admin"
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith(
        FILE_NAME)) == [], "managing accounts opens no index"

    listed = run_cli(tmp_path, "tokens", "list")
    assert listed.returncode == 0 and listed.stdout.startswith("ci  admin  rag_")
    assert secret not in listed.stdout + listed.stderr
    taken = run_cli(tmp_path, "tokens", "create", "ci")
    assert taken.returncode == 1 and "exists" in taken.stderr and not taken.stdout

    assert run_cli(tmp_path, "tokens", "revoke", "ci").returncode == 0
    assert Accounts.in_data_dir(tmp_path).tokens.verify(secret) is None
    again = run_cli(tmp_path, "tokens", "revoke", "ci")
    assert again.returncode == 1 and "no token named ci" in again.stderr


def test_cli_manages_password_accounts_from_stdin(tmp_path):
    added = run_cli(tmp_path, "users", "add", "alice", "--role", "admin", "--password-stdin",
                    stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    assert Accounts.in_data_dir(tmp_path).users.verify("alice", PASSWORD).role == "admin"
    listed = run_cli(tmp_path, "users", "list")
    assert listed.stdout.startswith("alice  admin  created ") and "argon2" not in listed.stdout

    changed = run_cli(tmp_path, "users", "password", "alice", "--password-stdin",
                      stdin=PASSWORD[::-1] + "\n")
    assert changed.returncode == 0, changed.stderr
    assert Accounts.in_data_dir(tmp_path).users.verify("alice", PASSWORD[::-1]) is not None
    short = run_cli(tmp_path, "users", "add", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "15" in short.stderr and "short" not in short.stderr
    no_terminal = run_cli(tmp_path, "users", "add", "bob", stdin="")
    assert no_terminal.returncode == 1 and "--password-stdin" in no_terminal.stderr

    assert run_cli(tmp_path, "users", "remove", "alice").returncode == 0
    gone = run_cli(tmp_path, "users", "password", "alice", "--password-stdin", stdin=PASSWORD)
    assert gone.returncode == 1 and "no user named alice" in gone.stderr
