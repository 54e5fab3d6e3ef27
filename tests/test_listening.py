"""Where the app listens when started as `make run` starts it: on this machine only, until
someone exposes it on purpose (`--server.address 0.0.0.0`), since the app has no sign-in yet."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import REPO
from tests.processes import cli_env, free_port, running_server

LISTEN = "0A"  # the TCP state of a listening socket in /proc/net/tcp
LOOPBACK = "0100007F"  # 127.0.0.1 as the kernel's table writes it


def listening(port: int) -> set[str]:
    """The local addresses (the kernel's hex) of every socket listening on `port`, IPv4 and 6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text(encoding="ascii").splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == LISTEN and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_app_started_as_make_run_starts_it_listens_on_loopback_only(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
               "--server.port", str(port)]  # the Makefile's `run`, no address given
    with running_server(command, ready_url=f"http://127.0.0.1:{port}/_stcore/health",
                        log=tmp_path / "app.log", timeout_s=120, cwd=REPO,
                        env=cli_env({"RAG_DATA_DIR": str(tmp_path / "data")})):
        assert listening(port) == {LOOPBACK}, "only 127.0.0.1, not every interface"
    said = (tmp_path / "app.log").read_text(errors="replace")
    assert "Network URL" not in said and f"127.0.0.1:{port}" in said
