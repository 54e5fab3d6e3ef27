"""Ingest through the engine's queue in a real browser: files dropped at once keep being indexed
while the user is on another page, a broken one is named with its cause, and files queued or
being indexed when the app is killed are indexed once it starts again, without a new upload.

One `streamlit run` serves the module on one data dir (killed and started again by the last
test), with the real embedder; answers stream from llama.cpp's server running SmolLM2. The tests
wait on what the page shows or on the job store the app writes, never for a fixed time.
"""

from __future__ import annotations

import re
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from rag.ingest_jobs import FILE_NAME, Job, JobStore
from tests.conftest import REPO
from tests.processes import cli_env, free_port, running_server, streamlit_command
from tests.test_e2e_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _screenshot, _settled

pytestmark = pytest.mark.slow

INDEX_MS = 400_000  # five real files embedded on 2 shared cores, after the embedder loads
DROPPED = {  # name -> path under the benchmark data
    "tracemonkey.pdf": "pdfs/pdfjs/tracemonkey.pdf",
    "rfc7525.txt": "docs/text/rfc7525.txt",
    "rust-book-ch04-01-what-is-ownership.md": "docs/markdown/rust-book-ch04-01-what-is-ownership.md",
    "rfc6265.html": "docs/html/rfc6265.html",
    "rust-book-ch16-01-threads.md": "docs/markdown/rust-book-ch16-01-threads.md",
}
INTERRUPTED = {  # the first is being indexed when the app is killed, the second waits
    "rfc6066.txt": "docs/text/rfc6066.txt",
    "rust-book-ch08-02-strings.md": "docs/markdown/rust-book-ch08-02-strings.md",
}
BROKEN = b"%PDF-1.4 garbage"
RC4_QUESTION = "Is RC4 allowed in TLS?"


class App:
    """`streamlit run` on one port and data dir, which a test can kill and start again."""

    def __init__(self, data_dir: Path, llm_url: str, log_dir: Path) -> None:
        self.data_dir, self.log_dir = data_dir, log_dir
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env = cli_env({"RAG_DATA_DIR": str(data_dir), "RAG_LLM_BASE_URL": llm_url,
                            "RAG_LLM_MODEL": "smollm2", "RAG_LLM_MAX_TOKENS": "24"})
        self.starts = 0
        self._running = ExitStack()
        self._process = None

    def start(self) -> None:
        self.starts += 1
        command = streamlit_command(self.url.rsplit(":", 1)[1])
        self._process = self._running.enter_context(running_server(
            command, ready_url=f"{self.url}/_stcore/health", cwd=REPO, env=self.env,
            log=self.log_dir / f"streamlit-{self.starts}.log"))

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine loses power."""
        self._process.kill()
        self._process.wait()
        self._running.close()

    def stop(self) -> None:
        self._running.close()

    def jobs(self) -> list[Job]:
        """The app's ingest jobs, read from its job store as another process would."""
        store = JobStore(self.data_dir / FILE_NAME)
        try:
            return store.jobs()
        finally:
            store.close()


@pytest.fixture(scope="module")
def app(llm_server: str, tmp_path_factory: pytest.TempPathFactory):
    server = App(tmp_path_factory.mktemp("ingest") / "data", llm_server,
                 tmp_path_factory.mktemp("streamlit_logs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    yield page
    page.close()


def _expect():
    return pytest.importorskip("playwright.sync_api").expect


def _documents_page(page, app: App) -> None:
    page.goto(f"{app.url}/documents")
    _expect()(page.get_by_role("heading", name="Documents", exact=True)).to_be_visible(
        timeout=INDEX_MS)
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        timeout=INDEX_MS)


def _nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).click()


def _rows(page):
    """The Documents page's queue: one row per job."""
    return page.locator('[data-testid="stMain"] [class*="st-key-job-"]')


def _row(page, name: str):
    return _rows(page).filter(has_text=name)


def _drop(page, paths: list[Path]) -> None:
    """Drop the files on the uploader; they are queued at once and the uploader is emptied."""
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        [str(path) for path in paths])


def _until(condition, what: str, timeout_s: float = INDEX_MS / 1000):
    """Until the app's job store says so (its worker records every step there)."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"not in time: {what}")
        time.sleep(0.05)
    return result


def test_files_dropped_at_once_are_indexed_while_the_user_is_elsewhere(
    app: App, page, bench_data: Path, tmp_path: Path
) -> None:
    expect = _expect()
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(BROKEN)
    paths = [bench_data / path for path in DROPPED.values()]
    _documents_page(page, app)
    _drop(page, [*paths[:3], broken, *paths[3:]])
    expect(_rows(page)).to_have_count(6, timeout=60_000)
    expect(page.locator('[data-testid="stFileUploaderFile"]')).to_have_count(0)

    # Away at once: the engine indexes the queue whatever the page does. The sidebar says how
    # far it got (asserted in test_app, where a job can be held; here it may be done already).
    _nav(page, "Chat")
    expect(page.get_by_role("heading", name="Chat with your documents")).to_be_visible()
    sidebar = page.locator('[data-testid="stSidebar"]')
    _screenshot(page, "ingest-sidebar-while-indexing.png")

    _nav(page, "Documents")
    _screenshot(page, "ingest-queue-while-indexing.png")  # as far as it got: not asserted

    for name in DROPPED:
        expect(_row(page, name)).to_contain_text(re.compile(r"indexed, \d+ chunks"),
                                                 timeout=INDEX_MS)
    expect(_row(page, "broken.pdf")).to_contain_text("failed: unreadable PDF")
    expect(_row(page, "broken.pdf").get_by_role("button", name="Retry")).to_be_visible()
    listed = page.locator('[data-testid="stMain"] [data-testid="stText"]')
    expect(listed).to_have_count(len(DROPPED), timeout=10_000)  # the list grew with the jobs
    for name in DROPPED:
        expect(listed.filter(has_text=name)).to_have_count(1)
    count = page.locator('[data-testid="stSidebar"] [data-testid="stMetricValue"]')
    expect(count).to_have_text("5", timeout=10_000)
    expect(sidebar.get_by_text(re.compile(r"1 failed: broken\.pdf — unreadable PDF"))).to_be_visible()
    expect(sidebar.get_by_text(re.compile(r"Indexing \d"))).to_have_count(0)
    _screenshot(page, "ingest-queue-done.png")
    assert sorted((job.source, job.status) for job in app.jobs()) == sorted(
        [("broken.pdf", "failed"), *((name, "indexed") for name in DROPPED)])

    # What rfc7525.txt says is found from the Chat page.
    _nav(page, "Chat")
    chat_input = page.locator('[data-testid="stChatInput"] textarea')
    chat_input.fill(RC4_QUESTION)
    chat_input.press("Enter")
    sources = page.locator('[data-testid="stChatMessage"] [data-testid="stExpander"] summary')
    expect(sources.filter(has_text="rfc7525.txt").first).to_be_visible(timeout=INDEX_MS)
    _settled(page)
    rfc = page.locator('[data-testid="stChatMessage"] [data-testid="stExpander"]').filter(
        has_text="rfc7525.txt").first
    rfc.locator("summary").click()
    expect(rfc.locator('[data-testid="stExpanderDetails"]')).to_contain_text("RC4")


def test_files_queued_when_the_app_is_killed_are_indexed_after_a_restart(
    app: App, page, bench_data: Path
) -> None:
    expect = _expect()
    first, second = INTERRUPTED
    _documents_page(page, app)
    _drop(page, [bench_data / path for path in INTERRUPTED.values()])

    def caught() -> dict[str, Job] | None:
        """Both files queued, and the first one being indexed, before anything is written."""
        jobs = {job.source: job for job in app.jobs() if job.source in INTERRUPTED}
        if len(jobs) == 2 and jobs[first].finished:
            pytest.fail(f"{first} was indexed before the app could be killed")
        if (len(jobs) == 2 and jobs[first].status == "running"
                and jobs[first].stage in ("parsing", "parsed", "chunking", "embedding")):
            return jobs
        return None

    killed = _until(caught, f"{first} being indexed")
    app.kill()
    after_kill = {job.source: job.status for job in app.jobs() if job.source in INTERRUPTED}
    assert after_kill == {first: "running", second: "queued"}, (killed, after_kill)

    app.start()
    _documents_page(page, app)  # a new browser session: nothing is uploaded again
    for name in INTERRUPTED:
        expect(_row(page, name)).to_contain_text(re.compile(r"indexed, \d+ chunks"),
                                                 timeout=INDEX_MS)
    listed = page.locator('[data-testid="stMain"] [data-testid="stText"]')
    for name in INTERRUPTED:
        expect(listed.filter(has_text=name)).to_have_count(1, timeout=10_000)
    _screenshot(page, "ingest-after-restart.png")
    statuses = {job.source: job.status for job in app.jobs() if job.source in INTERRUPTED}
    assert statuses == {first: "indexed", second: "indexed"}
    kept = {path.name for path in (app.data_dir / "uploads").iterdir()}
    assert not kept & {job.doc_id for job in killed.values()}  # kept only until indexed
