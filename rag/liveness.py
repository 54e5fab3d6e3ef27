"""Whether the process that claimed a piece of work still runs: an answer or an ingest job left
by a dead process is interrupted, one another live process holds is not."""

from __future__ import annotations

import os


def alive(pid: object) -> bool:
    """False for this very process: whatever it claimed before (re)starting is not running."""
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
