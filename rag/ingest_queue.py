"""Uploads indexed by the engine, not the page: an upload is written whole under data_dir and
queued, and a worker thread of the engine indexes the queue one file at a time, so leaving the
page, closing the tab or restarting the app never loses a file.

The upload's bytes stay under `uploads/` until its job no longer needs them (indexed, or
forgotten after failing); the indexed document keeps its own original, as any ingest does.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from rag.index import Index
from rag.index_files import write_atomically
from rag.ingest import Cancelled, ingest_file
from rag.ingest_jobs import FILE_NAME, Job, JobStore
from rag.liveness import alive
from rag.loaders import document_id

log = logging.getLogger(__name__)
UPLOADS = "uploads"
# Jobs some queue of this process is running, by job file: an engine rebuilt with new settings
# must not take its predecessor's running job for an interrupted one.
_running: set[tuple[Path, int]] = set()
_running_lock = threading.Lock()


class IngestQueue:
    def __init__(self, index: Index) -> None:
        self.index = index
        self._path = index.settings.data_dir / FILE_NAME
        self.jobs = JobStore(self._path)
        self._uploads = index.settings.data_dir / UPLOADS
        self._passwords: dict[int, str] = {}  # kept in memory only: a secret never hits the disk
        self._wake = threading.Condition()
        self._idle = True
        self._worker: threading.Thread | None = None
        self._started = self._stopping = False

    def start(self) -> None:
        """Jobs a dead process was running go back to the queue, and the worker starts on
        whatever waits: an app restarted with queued files indexes them without being asked."""
        with self._wake:
            if self._started:
                return
            self._started = True
            requeued = self.jobs.requeue(self._still_running)
        if requeued:
            log.info("%s interrupted ingest job(s) queued again", requeued)
        self._ensure_worker()

    def stop(self) -> None:
        """No new job for this queue's worker (the one it runs completes): for an engine
        replaced by one with other settings, whose queue takes over."""
        with self._wake:
            self._stopping = True

    def _still_running(self, job_id: int, pid: int | None) -> bool:
        if pid == os.getpid():
            with _running_lock:
                return (self._path, job_id) in _running
        return alive(pid)

    def submit(self, source: str, data: bytes, password: str | None = None) -> Job:
        """Written whole and queued before this returns; the same bytes twice are one job."""
        doc_id = document_id(data)
        write_atomically(self._upload(doc_id), data)
        job, new = self.jobs.add(source, doc_id)
        if new and password:
            self._passwords[job.id] = password
        self._ensure_worker()
        return job

    def cancel(self, job_id: int) -> Job | None:
        job = self.jobs.cancel(job_id)
        if job is not None and job.status == "cancelled":
            self._release(job)
        return job

    def retry(self, job_id: int, password: str | None = None) -> Job | None:
        """The job queued again (a password for a file that needs one), or None when it
        cannot be: not failed or cancelled, or its upload is gone."""
        job = self.jobs.get(job_id)
        if job is None or not self._upload(job.doc_id).is_file():
            return None
        queued = self.jobs.retry(job_id)
        if queued is not None:
            if password:
                self._passwords[queued.id] = password
            self._ensure_worker()
        return queued

    def forget_finished(self) -> None:
        """Clears finished jobs from the list, and the uploads no job needs any more."""
        for job in self.jobs.forget_finished():
            self._release(job)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until no job waits or runs in this process: for the CLI and tests, never a page."""
        with self._wake:
            return self._wake.wait_for(lambda: self._idle, timeout)

    def _upload(self, doc_id: str) -> Path:
        return self._uploads / doc_id

    def _release(self, job: Job) -> None:
        self._passwords.pop(job.id, None)
        if not self.jobs.needs_upload(job.doc_id):
            self._upload(job.doc_id).unlink(missing_ok=True)

    def _ensure_worker(self) -> None:
        with self._wake:
            if self._stopping:
                return
            self._idle = False
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="ingest-worker",
                                                daemon=True)
                self._worker.start()
            self._wake.notify_all()

    def _work(self) -> None:
        while True:
            with self._wake:  # a submit waits here, so it sees this worker running or gone
                job = None if self._stopping else self.jobs.claim(os.getpid())
                if job is None:
                    self._idle, self._worker = True, None
                    self._wake.notify_all()
                    return
                with _running_lock:
                    _running.add((self._path, job.id))
            try:
                self._run(job)
            finally:
                with _running_lock:
                    _running.discard((self._path, job.id))

    def _run(self, job: Job) -> None:
        path = self._upload(job.doc_id)
        try:
            data = path.read_bytes()
        except OSError as error:
            self.jobs.finish(job.id, "failed",
                             error=f"{job.source}: the upload was not kept ({error.strerror})")
            return
        try:
            result = ingest_file(self.index, job.source, data, self._passwords.get(job.id),
                                 progress=lambda stage, done, total: self.jobs.progress(
                                     job.id, stage, done, total))
            self.index.sync_lexical()
        except Cancelled:
            self.jobs.finish(job.id, "cancelled")
        except Exception as error:  # a bug must not stop the queue: the next file goes on
            log.exception("ingest job %s (%s) failed", job.id, job.source)
            self.jobs.finish(job.id, "failed", error=f"{job.source}: indexing failed: {error}")
        else:
            self.jobs.finish(job.id, result.status, chunks=result.chunks, error=result.error,
                             warnings=result.warnings)
        finished = self.jobs.get(job.id)
        if finished is not None:
            self._release(finished)
