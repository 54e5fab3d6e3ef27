"""The extractive preview in a real browser: while the model reads the prompt, source 1's best
sentence is shown marked under "Most relevant passage", and gone once the answer is complete.

Same servers as test_e2e_conversations (its fixtures: `streamlit run` over an indexed
tracemonkey.pdf, llama.cpp's server for the answer). A MutationObserver in the page stamps when
each element first appears, so the delay between the sources and the preview is measured in the
browser, not by polling from here; it is printed (`pytest -s`), not asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.sentences import split_sentences
from tests.test_e2e_browser import LONG_MS, NUMBERS_QUESTION, _wait_idle
from tests.test_e2e_conversations import (  # noqa: F401  (fixtures)
    _ask,
    _conversation_id,
    _expect,
    _show_stored,
    _wait_for_answers,
    app,
    browser,
    data_dir,
    held_llm,
)
from ui.sources import PREVIEW_LABEL, passage_html

SCREENSHOT = Path("/tmp/preview.png")
PREVIEW = '[class*="st-key-live-preview-m"]'
OFF_TOPIC = "What is the capital of France?"

# When each element is first in the page (performance.now(), ms); a live answer's text counts
# once it has some (its spinner is not the answer).
STAMPS = """
window.__seen = {};
const watched = {
  sources: () => document.querySelector(
    '[data-testid="stChatMessage"] [data-testid="stExpander"]'),
  previewBox: () => document.querySelector('[class*="st-key-live-preview-m"]'),
  previewLabel: () => document.querySelector(
    '[class*="st-key-live-preview-m"] [data-testid="stCaptionContainer"]'),
  preview: () => document.querySelector('[class*="st-key-live-preview-m"] mark'),
  firstText: () => [...document.querySelectorAll(
      '[class*="st-key-live-answer-m"] [data-testid="stMarkdown"]')]
    .find(e => !e.closest('[data-testid="stSpinner"]') && e.textContent.trim()),
  stored: () => document.querySelector('[class*="st-key-answer-m"]'),
};
new MutationObserver(() => {
  for (const [name, found] of Object.entries(watched)) {
    if (!(name in window.__seen) && found()) window.__seen[name] = performance.now();
  }
  if ('preview' in window.__seen && !('previewGone' in window.__seen)
      && !document.querySelector('[class*="st-key-live-preview-m"]')) {
    window.__seen.previewGone = performance.now();
  }
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_passage_html_shortens_around_the_marks() -> None:
    text = ("Alpha beta gamma delta epsilon zeta eta theta. <b>The key</b> sentence. "
            "Iota kappa lambda mu nu xi omicron pi rho.")
    start = text.index("<b>")
    end = text.index("sentence.") + len("sentence.")
    html = passage_html(text, [(start, end)], around=15)
    assert html == ('<div style="white-space: pre-wrap">… eta theta. <mark>&lt;b&gt;The key'
                    '&lt;/b&gt; sentence.</mark> Iota kappa …</div>'), html
    assert passage_html(text, [(start, end)], around=500) == passage_html(text, [(start, end)])
    assert passage_html(text, [], around=5) == passage_html(text)  # nothing marked: all of it
    unbroken = "x" * 400 + " Key. " + "y" * 400  # no word to cut at: cut in it, keep the spaces
    assert f"… {'x' * 19} <mark>Key.</mark> {'y' * 19} …" in passage_html(
        unbroken, [(401, 405)], around=20)


@pytest.fixture
def page(browser):  # noqa: F811  (the imported fixture)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.add_init_script(STAMPS)
    yield page
    page.close()


def _new_chat(page, url: str) -> None:
    page.goto(url)
    _expect()(page.get_by_role("heading", name="Chat with your documents")).to_be_visible(
        timeout=LONG_MS)
    _wait_idle(page)


@pytest.mark.slow
def test_preview_of_source_1_while_the_model_reads(app, held_llm, page) -> None:  # noqa: F811
    """The question waits at the model's door (held_llm) until the preview has been seen."""
    expect = _expect()
    _new_chat(page, app.url)
    _ask(page, NUMBERS_QUESTION)
    preview = page.locator(PREVIEW)
    mark = preview.locator("mark").first
    expect(mark).to_be_visible(timeout=LONG_MS)
    page.screenshot(path=str(SCREENSHOT))  # as the user sees it: the model still reading
    label = preview.locator('[data-testid="stCaptionContainer"]').inner_text()
    marked = mark.inner_text()
    assert not page.locator(f'[class*="answer-m"] {PREVIEW}').count()  # not part of the answer
    held_llm.open()

    conversation_id = _conversation_id(page)
    answers = _wait_for_answers(app.store, conversation_id, 1)
    _show_stored(page, answers)
    expect(preview).to_have_count(0)  # the finished answer's sources mark what it used
    seen = page.evaluate("window.__seen")

    source = answers[0].sources[0]
    assert answers[0].status == "done", answers
    assert PREVIEW_LABEL in label and "source [1]" in label, label
    assert f"{source.chunk.source} — page {source.chunk.page}" in label, label
    sentences = {_flat(source.chunk.text[start:end])
                 for start, end in split_sentences(source.chunk.text)}
    assert _flat(marked) in sentences, (marked, source.chunk.text)

    assert {"sources", "preview", "stored", "previewGone"} <= seen.keys(), seen
    assert seen["preview"] < seen["stored"], seen  # before the answer was complete
    assert seen["preview"] <= seen.get("firstText", seen["stored"]), seen
    delay = seen["preview"] - seen["sources"]
    print(f"\npreview {delay:.0f} ms after the sources (its box "
          f"{seen['previewBox'] - seen['sources']:.0f} ms, its label "
          f"{seen['previewLabel'] - seen['sources']:.0f} ms)")
    if "firstText" in seen:
        print(f"first answer text {seen['firstText'] - seen['preview']:.0f} ms after the preview")
    print(f"preview shown for {seen['previewGone'] - seen['preview']:.0f} ms, removed "
          f"{seen['stored'] - seen['previewGone']:.0f} ms before the stored answer was drawn")


@pytest.mark.slow
def test_no_preview_for_a_refused_question(app, page) -> None:  # noqa: F811
    _new_chat(page, app.url)
    _ask(page, OFF_TOPIC)
    answers = _wait_for_answers(app.store, _conversation_id(page), 1)
    _show_stored(page, answers)
    assert answers[0].status == "refused", answers
    seen = page.evaluate("window.__seen")
    assert "stored" in seen and "preview" not in seen, seen
