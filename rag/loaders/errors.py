"""The one error every loader raises, in its own module so each format can import it."""

from __future__ import annotations


class LoaderError(Exception):
    """A file we refuse, with a message the UI and CLI can show as is: "<file>: <cause>"."""

    def __init__(self, source: str, cause: str) -> None:
        super().__init__(f"{source}: {cause}")
        self.source = source
        self.cause = cause

    def __reduce__(self):  # keep it picklable across a process pool despite the two-arg init
        return (type(self), (self.source, self.cause))
