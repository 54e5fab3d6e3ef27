"""One engine per server process, shared by every browser session (conversations are stored by
the engine; ui/conversations.py keeps which one a tab shows)."""

from __future__ import annotations

import gc
import logging

import streamlit as st
from pydantic import ValidationError

from rag.config import Settings, describe_validation_error
from rag.pipeline import RAG
from rag.user_settings import load_settings, saved_path

log = logging.getLogger(__name__)

# Why the saved settings were not applied at the last engine build (shown in the sidebar).
settings_problems: list[str] = []


def _settings() -> Settings:
    """defaults < .env < settings saved on the Settings page < environment variables. A saved file
    that no longer fits (e.g. the environment now sets a conflicting value) must not keep the
    app from starting: fall back to .env and the environment, and say so."""
    settings_problems.clear()
    try:
        return load_settings()
    except (ValidationError, ValueError) as error:  # ValueError: a corrupt settings.json
        reason = (describe_validation_error(error) if isinstance(error, ValidationError)
                  else str(error))
        log.warning("saved settings not applied: %s", reason)
        settings = Settings()
        settings_problems.append(
            f"The saved settings ({saved_path(settings.data_dir)}) were not applied: {reason}. "
            "Change or forget them on the Settings page."
        )
        return settings


@st.cache_resource(show_spinner="Loading the embedding model…")
def get_rag() -> RAG:
    gc.unfreeze()  # an engine replaced by this one (other settings) can be collected now
    gc.collect()
    engine = RAG(_settings())
    engine.embedder  # noqa: B018  load it now, under the spinner, not on the first question
    engine.queue.start()  # files queued before a restart are indexed without being asked
    # Streamlit runs a full garbage collection after every script run, fragment reruns
    # included: over the models' ~600,000 objects it held the GIL ~0.6 s each time, and a page
    # following the queue slowed the ingest worker 7-fold. Frozen, they are skipped.
    gc.freeze()
    return engine


def rebuild_rag() -> None:
    """The next page run builds an engine from the settings as they are now; the current one
    finishes the file it is indexing and hands the queue over."""
    get_rag().queue.stop()
    get_rag.clear()

