"""Entry point: navigation over the pages and the sidebar every page shares."""

from __future__ import annotations

import streamlit as st

import rag  # noqa: F401  (offline and thread settings before any model loads)
from rag.accounts import LOCAL
from rag.generation import public_url
from rag.ingest_jobs import Job
from ui.ingest_queue import following, sidebar_summary
from ui.sign_in import get_accounts, sign_out, signed_in
from ui.state import get_rag, settings_problems

st.set_page_config(page_title="Chat with your documents", page_icon="📚", layout="wide")

engine = get_rag()
user = signed_in(get_accounts(engine.settings.data_dir))  # or the sign-in form, and no further
# A reader asks and reads; what changes the index or where questions go is an admin's.
admin_pages = [
    st.Page("app_pages/documents.py", title="Documents", icon=":material/description:"),
    st.Page("app_pages/settings.py", title="Settings", icon=":material/tune:"),
    st.Page("app_pages/evaluation.py", title="Evaluation", icon=":material/query_stats:"),
] if user.is_admin else []
page = st.navigation(
    [
        st.Page("app_pages/chat.py", title="Chat", icon=":material/chat:", default=True),
        *admin_pages,
        st.Page("app_pages/about.py", title="About", icon=":material/info:"),
    ]
)

with st.sidebar:
    if user != LOCAL:
        st.caption(f"Signed in as **{user.name}** ({user.role})")
        st.button("Sign out", key="sign-out", icon=":material/logout:", type="tertiary",
                  on_click=sign_out)
    index_status = st.empty()
    if user.is_admin:  # they name files and folders of the server
        for warning in engine.warnings:
            st.warning(warning)
        for problem in settings_problems:
            st.error(problem)
    st.page_link("app_pages/about.py", label="How it works (README)", icon=":material/menu_book:")


def show_index_status(jobs: list[Job]) -> None:
    st.metric("Documents", len(engine.documents()))
    sidebar_summary(jobs, link=user.is_admin)
    st.caption(f"{engine.store.count()} chunks · embedder {engine.index_model}")
    if not user.is_admin:  # where the index lives and where questions go are the server's
        return
    data_dir = engine.settings.data_dir
    st.caption(f"Store: {engine.index_location()}",
               help=f"Kept originals, BM25 and saved settings: {data_dir.resolve()}")
    if engine.settings.uses_remote_llm:
        endpoint = public_url(engine.settings.llm_base_url or "https://api.openai.com/v1")
        st.caption(f"LLM: `{engine.settings.llm_model}` at `{endpoint}`")
    else:
        st.caption("LLM: embedded model, runs on this machine (no API key needed)")


# Before the page, which may take a while (answering, re-indexing) ... (in a container as the
# fragment below draws in one, so its redraw replaces this one element for element)
with index_status.container(), st.container():
    show_index_status(engine.queue.jobs.jobs())
page.run()
# ... and after it, in a fragment that follows the queue: the page may have added or deleted
# documents, and the engine's worker indexes queued files whatever the page does.
with index_status.container():
    following(engine, show_index_status)
