"""The engine's ingest queue as the pages show it: one row per job with its progress and actions
on the Documents page, a compact summary in every page's sidebar. Both only read the job store,
so they show what the engine's worker did, whichever page or process queued the file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import streamlit as st

from rag.ingest_jobs import RETRYABLE, Job
from rag.ingest_queue import IngestQueue
from rag.pipeline import RAG

REFRESH_S = 1.0  # how often a page follows unfinished jobs
RECENT_FAILURE = timedelta(minutes=15)  # how long the sidebar keeps saying a file failed
DOCUMENTS_PAGE = "app_pages/documents.py"
_MARKDOWN_ACTIVE = "\\`*_[]$~|"  # what would turn a file name or an error into markup
ICONS = {
    "queued": ":gray[:material/schedule:]",
    "running": ":blue[:material/progress_activity:]",
    "indexed": ":green[:material/check_circle:]",
    "already indexed": ":green[:material/check_circle:]",
    "failed": ":red[:material/error:]",
    "cancelled": ":gray[:material/block:]",
}


def plain(text: str) -> str:
    """Text from a user or a file shown literally inside our Markdown."""
    return "".join(f"\\{char}" if char in _MARKDOWN_ACTIVE else char for char in text)


def cause(job: Job) -> str:
    """The error without the file name it starts with: rows name the file already."""
    return (job.error or "unknown error").removeprefix(f"{job.source}: ")


def needs_password(job: Job) -> bool:
    return job.status == "failed" and "password" in (job.error or "").lower()


def unfinished(jobs: Sequence[Job]) -> bool:
    return any(not job.finished for job in jobs)


def progress_text(job: Job, of: str = " of ") -> str:
    """How far a job got, in the words of its stage ("embedding 120 of 400 chunks")."""
    if job.status == "running":
        if job.cancel:
            return "stopping…"
        stages = {
            "parsing": "parsing",
            "parsed": f"parsed {job.total} page{'s' if job.total != 1 else ''}",
            "chunking": f"chunking {job.total} page{'s' if job.total != 1 else ''}",
            # the worker reports after each slice of chunks: a small file only says how many
            "embedding": (f"embedding {job.done}{of}{job.total} chunks" if job.done
                          else f"embedding {job.total} chunks"),
            "writing": f"writing {job.total} chunks",
        }
        return stages.get(job.stage, "starting")
    if job.status == "indexed":
        return f"indexed, {job.chunks} chunk{'s' if job.chunks != 1 else ''}"
    if job.status == "failed":
        return f"failed: {cause(job)}"
    return job.status  # queued, already indexed, cancelled


def batch(jobs: Sequence[Job]) -> list[Job]:
    """The unfinished jobs and those finished since the oldest of them was queued: what
    "Indexing 2 of 6" counts (a drop of many files, and what was added while they ran)."""
    waiting = [job for job in jobs if not job.finished]
    if not waiting:
        return []
    since = min(job.created_at for job in waiting)
    return [job for job in jobs if not job.finished or job.updated_at >= since]


def recent_failures(jobs: Sequence[Job]) -> list[Job]:
    since = (datetime.now(UTC) - RECENT_FAILURE).isoformat(timespec="microseconds")
    return [job for job in jobs if job.status == "failed" and job.updated_at >= since]


def following(engine: RAG, draw: Callable[[list[Job]], None]) -> None:
    """`draw(jobs)` in a fragment that redraws itself every REFRESH_S while jobs are unfinished,
    and not at all once they are done. A fragment's timer is set by the full run that draws it,
    so when the queue starts or stops working the whole app reruns once to set or drop it."""
    busy = unfinished(engine.queue.jobs.jobs())

    def body() -> None:
        jobs = engine.queue.jobs.jobs()
        if unfinished(jobs) != busy:
            st.rerun()
        draw(jobs)

    st.fragment(body, run_every=REFRESH_S if busy else None)()


# --- the sidebar --------------------------------------------------------------------------------


def sidebar_summary(jobs: Sequence[Job], *, link: bool) -> None:
    """Nothing while the queue is idle and no file failed lately; otherwise what runs, how many
    wait and which files failed, with a link to the Documents page (`link`: for who has it)."""
    current, failed = batch(jobs), recent_failures(jobs)
    running = [job for job in jobs if job.status == "running"]
    queued = sum(job.status == "queued" for job in jobs)
    if not (running or queued or failed):
        return
    done = sum(job.finished for job in current)
    with st.container(border=True):
        for position, job in enumerate(running, start=done + 1):
            st.caption(f"Indexing {position} of {len(current)}: {plain(job.source)} — "
                       f"{progress_text(job, of='/')}")
            if job.stage == "embedding" and job.done:
                st.progress(job.done / job.total)
        if queued:
            st.caption(f"{queued} queued")
        if failed:
            shown = "; ".join(f"{plain(job.source)} — {plain(cause(job))}" for job in failed[:3])
            more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
            st.caption(f":red[{len(failed)} failed:] {shown}{more}")
        if link:
            st.page_link(DOCUMENTS_PAGE, label="Indexing queue",
                         icon=":material/pending_actions:")


# --- the Documents page -------------------------------------------------------------------------


def queue_section(queue: IngestQueue, jobs: Sequence[Job], password_key: str) -> None:
    """Every job with its progress, Cancel for unfinished ones, Retry for failed or cancelled
    ones (with the password typed in `password_key` when the file asked for one)."""
    if not jobs:
        return
    st.subheader("Queue")
    current = batch(jobs)
    summary, clear = st.columns([6, 1.4], vertical_alignment="center")
    if current:
        done = sum(job.finished for job in current)
        summary.caption(f"{done} of {len(current)} done; the app indexes them whatever page "
                        "you are on.")
    else:
        counts = Counter(job.status for job in jobs)
        summary.caption(", ".join(f"{n} {status}" for status, n in counts.items()))
    clear.button("Clear finished", key="clear-finished", icon=":material/clear_all:",
                 disabled=all(not job.finished for job in jobs), on_click=_clear, args=(queue,),
                 width="stretch", help="Remove finished files from this list (indexed documents stay)")
    typed = bool(st.session_state.get(password_key))
    for job in jobs:
        _job_row(queue, job, password_key, typed)


def _job_row(queue: IngestQueue, job: Job, password_key: str, typed: bool) -> None:
    with st.container(key=f"job-{job.id}"):
        text, action = st.columns([6, 1.4], vertical_alignment="center")
        status = progress_text(job)
        if job.status == "failed":
            status = f":red[{plain(status)}]"
        else:
            status = plain(status)
        text.markdown(f"{ICONS[job.status]} **{plain(job.source)}** — {status}")
        if job.status == "running" and job.stage == "embedding" and job.done:
            text.progress(job.done / job.total)
        for warning in job.warnings:
            text.caption(f":orange[:material/warning:] {plain(warning)}")
        if not job.finished:
            action.button("Cancel", key=f"cancel-job-{job.id}", disabled=job.cancel,
                          width="stretch", on_click=queue.cancel, args=(job.id,))
        elif needs_password(job):
            action.button("Retry with password", key=f"retry-job-{job.id}", disabled=not typed,
                          width="stretch", on_click=_retry, args=(queue, job.id, password_key),
                          help="Type the PDF's password in the field above, then retry")
        elif job.status in RETRYABLE:
            action.button("Retry", key=f"retry-job-{job.id}", width="stretch",
                          on_click=_retry, args=(queue, job.id, None))


def _retry(queue: IngestQueue, job_id: int, password_key: str | None) -> None:
    """Queued again; the whole app reruns so the pages start following the queue again (and
    the password field shows it was used: it is cleared, never kept)."""
    password = st.session_state.get(password_key) if password_key else None
    queue.retry(job_id, password=password or None)
    if password_key:
        st.session_state[password_key] = ""
    st.rerun()


def _clear(queue: IngestQueue) -> None:
    queue.forget_finished()
    st.rerun()  # the sidebar's list of failed files too
