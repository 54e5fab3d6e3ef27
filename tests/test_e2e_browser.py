"""End to end in a real browser: `streamlit run`, upload through the page, ask, read the answer.

Chromium comes from the system (/usr/bin/chromium; Playwright's own download is not used) and the
answer streams from llama.cpp's OpenAI-compatible server running SmolLM2.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.held_llm import HeldLLM
from tests.processes import free_port, running_server, streamlit_command

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
ARTIFACTS = REPO / "artifacts"
NUMBERS_QUESTION = "How are JavaScript numbers represented as integers in traces?"
# An answer's text, as it streams (live-answer-m<id>) or as stored (answer-m<id>); no sources.
ANSWER = '[class*="answer-m"] [data-testid="stMarkdown"]'
LONG_MS = 120_000  # the first run loads the embedder; an upload embeds a 14-page PDF on 2 cores


@pytest.fixture
def paused_llm(llm_server: str) -> Iterator[HeldLLM]:
    """The llama.cpp server, with each answer stopped after its first piece of text until the
    test has seen it on the page."""
    with HeldLLM(llm_server, pause_after_first_text=True) as gate:
        gate.open()
        yield gate


@pytest.fixture
def app_url(paused_llm: HeldLLM, tmp_path: Path) -> Iterator[str]:
    """`streamlit run` on a free port with its own data dir and the llama.cpp server as its LLM."""
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RAG_") and k != "OPENAI_API_KEY"
    }
    env.update(
        RAG_DATA_DIR=str(tmp_path / "data"),
        RAG_LLM_BASE_URL=paused_llm.url,
        RAG_LLM_MODEL="smollm2",
        RAG_LLM_MAX_TOKENS="40",
    )
    command = streamlit_command(port)
    log = tmp_path / "streamlit.log"
    url = f"http://127.0.0.1:{port}"
    with running_server(command, ready_url=f"{url}/_stcore/health", log=log, cwd=REPO, env=env):
        yield url


def _wait_idle(page) -> None:
    """Until the app's script run has ended."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        timeout=LONG_MS
    )


def _settled(page) -> None:
    """Until the run has ended and the stored answers replaced the streamed ones (the page
    reruns once when its answers are complete; between the two runs it is briefly idle)."""
    page.wait_for_function(
        """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState
                 === 'notRunning'
             && !document.querySelector('[data-stale="true"], [class*="st-key-live-answer-"]')""",
        timeout=LONG_MS,
    )


def _screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to fit it."""
    page.wait_for_timeout(500)  # any expander's opening animation
    height = page.evaluate(  # the tallest scrolling content on the page
        "() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))"
    )
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": max(900, min(int(height) + 40, 6000))})
    page.wait_for_timeout(300)  # relayout
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    page.set_viewport_size({"width": width, "height": 900})


def _watch_text(page, locator, timeout_s: float = 120) -> list[str]:
    """Every distinct text the locator shows until the script run ends."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state")
        if locator.count():
            text = locator.first.inner_text().strip()
            if text and (not seen or seen[-1] != text):
                seen.append(text)
        if running == "notRunning" and seen:
            return seen
        time.sleep(0.05)
    pytest.fail(f"the answer did not finish within {timeout_s} s; seen: {seen}")


def test_upload_then_ask_in_a_browser(
    app_url: str, paused_llm: HeldLLM, bench_data: Path, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    expect = sync_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 garbage")
    tracemonkey = bench_data / "pdfs" / "pdfjs" / "tracemonkey.pdf"

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(app_url)
            expect(page.get_by_role("heading", name="Chat with your documents")).to_be_visible(
                timeout=LONG_MS
            )

            # Documents: drop a real PDF and a broken one at once.
            page.locator('[data-testid="stSidebarNav"] a', has_text="Documents").click()
            expect(page.get_by_role("heading", name="Documents", exact=True)).to_be_visible(
                timeout=LONG_MS
            )
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
                [str(tracemonkey), str(broken)]
            )
            # Queued at once; the queue's rows follow the engine's worker as it indexes them.
            jobs = page.locator('[data-testid="stMain"] [class*="st-key-job-"]')
            indexed = jobs.filter(has_text="tracemonkey.pdf").filter(has_text="indexed, ")
            expect(indexed).to_be_visible(timeout=LONG_MS)
            expect(jobs.filter(has_text="broken.pdf")).to_contain_text(
                "failed: unreadable PDF", timeout=LONG_MS
            )
            _wait_idle(page)
            listed = page.locator('[data-testid="stMain"] [data-testid="stText"]')
            expect(listed.filter(has_text="tracemonkey.pdf")).to_be_visible()
            # The sidebar follows the queue too, so its count includes this upload.
            count = page.locator('[data-testid="stSidebar"] [data-testid="stMetricValue"]')
            expect(count).to_have_text("1", timeout=10_000)
            _screenshot(page, "documents.png")

            # Chat: ask, watch the answer stream in under the sources it came from.
            page.locator('[data-testid="stSidebarNav"] a', has_text="Chat").click()
            chat_input = page.locator('[data-testid="stChatInput"] textarea')
            chat_input.fill(NUMBERS_QUESTION)
            chat_input.press("Enter")
            assistant = page.locator('[data-testid="stChatMessage"]').filter(
                has=page.locator('[data-testid="stChatMessageAvatarAssistant"]')
            )
            expect(assistant).to_have_count(1, timeout=LONG_MS)
            source = assistant.locator('[data-testid="stExpander"] summary').filter(
                has_text="tracemonkey.pdf"
            ).filter(has_text="page 5")
            expect(source.first).to_be_visible(timeout=LONG_MS)
            # Streamed: the answer's first words are on the page while the rest is held back.
            answer = assistant.locator(ANSWER)
            assert paused_llm.wait_for_first_text(timeout_s=LONG_MS / 1000)
            expect(answer.first).to_have_text(re.compile(r"\S"), timeout=LONG_MS)
            first_words = answer.first.inner_text().strip()
            paused_llm.resume()
            text = _watch_text(page, answer)[-1]
            assert "The language model failed" not in text, text
            assert len(first_words) < len(text), (first_words, text)
            _settled(page)
            source.first.click()  # the passage itself, as plain text
            expect(assistant.locator('[data-testid="stExpanderDetails"]').first).to_contain_text(
                "integer", timeout=10_000
            )
            _screenshot(page, "chat.png")

            # Settings: every control with its default in the help and where its value comes
            # from; the endpoint and model come from this server's environment, so they are locked.
            page.locator('[data-testid="stSidebarNav"] a', has_text="Settings").click()
            expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible(
                timeout=LONG_MS
            )
            _wait_idle(page)
            expect(page.get_by_text("Set by the environment (RAG_LLM_BASE_URL)")).to_be_visible()
            expect(page.locator('input[type="password"]')).to_have_value("")
            _screenshot(page, "settings.png")
        finally:
            browser.close()


@pytest.fixture
def app_with_accounts(tmp_path: Path) -> Iterator[str]:
    """`streamlit run` on loopback over a data dir that has an admin and a reader account (so
    every tab signs in); nothing indexed, so questions are refused without a language model."""
    from rag.accounts import Accounts

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    accounts = Accounts.in_data_dir(data_dir)
    accounts.users.add("ada", "admin", "ada-admin-passphrase-1")
    accounts.users.add("rui", "reader", "rui-reader-passphrase-2")
    accounts.close()
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RAG_") and k != "OPENAI_API_KEY"
    }
    env.update(RAG_DATA_DIR=str(data_dir))
    url = f"http://127.0.0.1:{port}"
    with running_server(streamlit_command(port), ready_url=f"{url}/_stcore/health",
                        log=tmp_path / "streamlit.log", cwd=REPO, env=env):
        yield url


def _ending(texts: list[str]) -> list[re.Pattern]:
    return [re.compile(f"{re.escape(text)}$") for text in texts]


def _sign_in(page, name: str, password: str) -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_signing_in_in_a_browser(app_with_accounts: str) -> None:
    """A reader signs in, asks, and sees no admin page; a reload asks again; the admin sees
    the reader's conversation and every page."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    expect = sync_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    question = "What is a good recipe for chocolate chip cookies?"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(app_with_accounts)
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=LONG_MS)
            expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)
            _sign_in(page, "rui", "ada-admin-passphrase-1")  # another account's password
            expect(page.get_by_text("Wrong name or password.")).to_be_visible(timeout=LONG_MS)
            _screenshot(page, "sign-in.png")

            _sign_in(page, "rui", "rui-reader-passphrase-2")
            expect(page.get_by_role("heading", name="Chat with your documents")).to_be_visible(
                timeout=LONG_MS
            )
            sidebar = page.locator('[data-testid="stSidebar"]')
            expect(sidebar).to_contain_text("Signed in as rui (reader)")
            nav = page.locator('[data-testid="stSidebarNav"] a')
            expect(nav).to_have_text(_ending(["Chat", "About"]))  # after the icon's name
            chat_input = page.locator('[data-testid="stChatInput"] textarea')
            chat_input.fill(question)
            chat_input.press("Enter")
            expect(page.locator('[data-testid="stChatMessage"]').last).to_contain_text(
                "I don't have enough information", timeout=LONG_MS
            )
            _settled(page)
            expect(sidebar.get_by_role("button", name=question)).to_be_visible()
            _screenshot(page, "signed-in-reader.png")

            page.reload()  # a sign-in lasts for the tab's session; the conversation stays
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=LONG_MS)
            _sign_in(page, "ada", "ada-admin-passphrase-1")
            expect(sidebar).to_contain_text("Signed in as ada (admin)", timeout=LONG_MS)
            expect(nav).to_have_text(
                _ending(["Chat", "Documents", "Settings", "Evaluation", "About"])
            )
            expect(page.locator('[data-testid="stChatMessage"]').first).to_contain_text(question)
            sidebar.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=LONG_MS)
        finally:
            browser.close()
