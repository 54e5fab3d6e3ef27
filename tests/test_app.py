"""The Streamlit UI through AppTest: real engine, real embedder, real PDF, SmolLM2 in-process."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from rag.generation import REFUSAL

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parent.parent / "streamlit_app.py"
NUMBERS_QUESTION = "How are JavaScript numbers represented as integers in traces?"
OFF_TOPIC_QUESTION = "What is a good recipe for chocolate chip cookies?"
NOTES = b"# Release notes\n\nVersion 2 adds a blue button to the settings page.\n"
TIMEOUT = 180  # a first run loads the embedder; an upload embeds a 14-page PDF on 2 cores


def _clear_engine() -> None:
    """get_rag is st.cache_resource: without this a test would see another module's data dir."""
    from ui.state import get_rag

    get_rag.clear()
    st.cache_resource.clear()


@pytest.fixture(scope="module")
def app_env(tmp_path_factory: pytest.TempPathFactory, smollm_gguf: Path) -> Iterator[Path]:
    """RAG_* settings for this module: its own data dir, the tiny embedded model, short answers."""
    data_dir = tmp_path_factory.mktemp("app_data")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("RAG_") or name == "OPENAI_API_KEY":
                patch.delenv(name)
        patch.setenv("RAG_DATA_DIR", str(data_dir))
        patch.setenv("RAG_LLM_GGUF", str(smollm_gguf))
        patch.setenv("RAG_LLM_MAX_TOKENS", "24")
        _clear_engine()
        yield data_dir
        _clear_engine()


def new_app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT)


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [exception.message for exception in at.exception]


@pytest.fixture(scope="module")
def uploaded(app_env: Path, bench_data: Path) -> AppTest:
    """The Documents page after dropping the real PDF and a broken one into the uploader."""
    at = new_app().run()
    _no_exceptions(at)
    at.switch_page("app_pages/documents.py").run()
    pdf = (bench_data / "pdfs" / "pdfjs" / "tracemonkey.pdf").read_bytes()
    at.file_uploader[0].set_value(
        [
            ("tracemonkey.pdf", pdf, "application/pdf"),
            ("broken.pdf", b"%PDF-1.4 garbage", "application/pdf"),
        ]
    )
    return at.run()


def _sidebar_count(at: AppTest) -> str:
    return at.sidebar.metric[0].value


def ask(at: AppTest, question: str) -> AppTest:
    return at.chat_input[0].set_value(question).run()


def test_upload_indexes_good_file_and_names_the_broken_one(uploaded: AppTest) -> None:
    _no_exceptions(uploaded)
    assert any("tracemonkey.pdf: indexed" in s.value for s in uploaded.success)
    assert any("broken.pdf" in e.value and "failed" in e.value for e in uploaded.error)
    listed = [t.value for t in uploaded.text]
    assert "tracemonkey.pdf" in listed and "broken.pdf" not in listed
    assert _sidebar_count(uploaded) == "1"


def test_chat_answers_from_the_pdf_with_its_sources(uploaded: AppTest) -> None:
    at = new_app().run()
    ask(at, NUMBERS_QUESTION)
    _no_exceptions(at)
    user, assistant = at.chat_message
    assert user.markdown[0].value == NUMBERS_QUESTION
    answer = assistant.markdown[0].value
    assert answer.strip() and REFUSAL not in answer
    assert "[The language model failed" not in answer
    labels = [expander.label for expander in assistant.expander]
    assert any("tracemonkey.pdf" in label and "page 5" in label for label in labels), labels
    assert all("similarity" in label for label in labels)

    # The answer and its sources stay on screen after the next rerun.
    at.run()
    assistant = at.chat_message[1]
    assert assistant.markdown[0].value == answer
    assert [expander.label for expander in assistant.expander] == labels


def test_off_topic_question_is_refused_with_the_threshold(uploaded: AppTest) -> None:
    at = ask(new_app().run(), OFF_TOPIC_QUESTION)
    _no_exceptions(at)
    assistant = at.chat_message[1]
    assert assistant.markdown[0].value == REFUSAL
    assert not assistant.expander
    captions = [caption.value for caption in assistant.caption]
    assert any("similarity threshold 0.40" in caption for caption in captions), captions

    # The reason stays with the refusal after the next rerun.
    at.run()
    assert [caption.value for caption in at.chat_message[1].caption] == captions


def test_two_sessions_do_not_share_chat_history(uploaded: AppTest) -> None:
    first, second = new_app().run(), new_app().run()
    ask(first, OFF_TOPIC_QUESTION)
    second.run()
    assert len(first.chat_message) == 2
    assert len(second.chat_message) == 0
    ask(second, "Where can I park my bicycle?")
    first.run()
    assert [m.markdown[0].value for m in first.chat_message] == [OFF_TOPIC_QUESTION, REFUSAL]
    assert second.chat_message[0].markdown[0].value == "Where can I park my bicycle?"
    assert len(second.chat_message) == 2


def test_documents_page_lists_and_deletes(uploaded: AppTest) -> None:
    at = new_app().run()
    at.switch_page("app_pages/documents.py").run()
    at.file_uploader[0].upload("notes.md", NOTES, "text/markdown").run()
    _no_exceptions(at)
    assert any("notes.md: indexed" in s.value for s in at.success)
    assert "notes.md" in [t.value for t in at.text]
    assert _sidebar_count(at) == "2"

    at.button(key=f"delete-{hashlib.sha256(NOTES).hexdigest()}").click().run()
    _no_exceptions(at)
    listed = [t.value for t in at.text]
    assert "notes.md" not in listed and "tracemonkey.pdf" in listed
    assert _sidebar_count(at) == "1"


def test_threshold_one_refuses_everything(uploaded: AppTest) -> None:
    """Runs last: it rebuilds the engine with RAG_SIMILARITY_THRESHOLD=1.0 on the same index."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAG_SIMILARITY_THRESHOLD", "1.0")
        _clear_engine()
        try:
            at = ask(new_app().run(), NUMBERS_QUESTION)
            _no_exceptions(at)
            assistant = at.chat_message[1]
            assert assistant.markdown[0].value == REFUSAL
            assert not assistant.expander
            assert any("similarity threshold 1.00" in c.value for c in assistant.caption)
        finally:
            _clear_engine()
