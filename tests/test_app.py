"""The Streamlit UI through AppTest: real engine, real embedder, real PDF, SmolLM2 in-process."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from rag.citations import link_markers
from rag.conversations import title_from
from rag.generation import REFUSAL
from tests.processes import clear_settings_env

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
        clear_settings_env(patch)
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


def _after_the_queue(at: AppTest) -> AppTest:
    """The page once the engine's worker has been through the queue: a browser follows it with
    a fragment's timer, which AppTest does not run."""
    assert _engine().queue.wait_idle(TIMEOUT)
    return at.run()


def _queue_rows(at: AppTest) -> list[str]:
    """The Documents page's queue: a line per job, e.g. "... **notes.md** — indexed, 1 chunk"."""
    return [m.value for m in at.markdown if " — " in m.value and "**" in m.value]


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
    at.run()
    _no_exceptions(at)
    assert not at.file_uploader[0].value  # queued at once, and the uploader emptied
    assert len(_queue_rows(at)) == 2
    return _after_the_queue(at)


def _sidebar_count(at: AppTest) -> str:
    return at.sidebar.metric[0].value


def ask(at: AppTest, question: str) -> AppTest:
    return at.chat_input[0].set_value(question).run()


def test_upload_indexes_good_file_and_names_the_broken_one(uploaded: AppTest) -> None:
    _no_exceptions(uploaded)
    chunks = next(info.chunks for info in _engine().documents()
                  if info.source == "tracemonkey.pdf")
    rows = _queue_rows(uploaded)
    assert any("tracemonkey.pdf" in row and f"indexed, {chunks} chunks" in row for row in rows)
    assert any("broken.pdf" in row and "failed: unreadable PDF" in row for row in rows), rows
    assert uploaded.button(key=f"retry-job-{_job_id('broken.pdf')}").label == "Retry"
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


def test_two_sessions_hold_their_own_conversations(uploaded: AppTest) -> None:
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
    assert first.query_params["c"] != second.query_params["c"]


def test_documents_page_lists_and_deletes(uploaded: AppTest) -> None:
    at = new_app().run()
    at.switch_page("app_pages/documents.py").run()
    at.file_uploader[0].upload("notes.md", NOTES, "text/markdown").run()
    _no_exceptions(at)
    _after_the_queue(at)
    assert any("notes.md" in row and "indexed, 1 chunk" in row for row in _queue_rows(at))
    assert "notes.md" in [t.value for t in at.text]
    assert _sidebar_count(at) == "2"

    doc_id = hashlib.sha256(NOTES).hexdigest()
    # The first click only asks; Cancel keeps the document.
    at.button(key=f"delete-{doc_id}").click().run()
    _no_exceptions(at)
    assert "notes.md" in [t.value for t in at.text]
    assert any(w.value == "Delete notes.md? This removes it from the index." for w in at.warning)
    at.button(key=f"cancel-delete-{doc_id}").click().run()
    assert "notes.md" in [t.value for t in at.text]
    assert not any("Delete notes.md?" in w.value for w in at.warning)
    assert _sidebar_count(at) == "2"

    at.button(key=f"delete-{doc_id}").click().run()
    at.button(key=f"confirm-delete-{doc_id}").click().run()
    _no_exceptions(at)
    listed = [t.value for t in at.text]
    assert "notes.md" not in listed and "tracemonkey.pdf" in listed
    assert _sidebar_count(at) == "1"


def test_new_chat_starts_another_conversation_and_keeps_the_old_one(uploaded: AppTest) -> None:
    at = ask(new_app().run(), OFF_TOPIC_QUESTION)
    assert len(at.chat_message) == 2
    old = at.query_params["c"]
    at.button(key="new-chat").click().run()
    _no_exceptions(at)
    assert len(at.chat_message) == 0
    assert "c" not in at.query_params
    at.run()
    assert len(at.chat_message) == 0
    at.button(key=f"open-{old}").click().run()
    assert [m.markdown[0].value for m in at.chat_message] == [OFF_TOPIC_QUESTION, REFUSAL]


# --- Conversations -------------------------------------------------------------------------------

FOLLOW_UP = "And how are doubles represented?"


def _engine():
    from ui.state import get_rag

    return get_rag()


def _job_id(source: str) -> int:
    return next(job.id for job in _engine().queue.jobs.jobs() if job.source == source)


def _opened(conversation_id: str) -> AppTest:
    """A new browser session on the conversation's URL: what a reload or a shared link opens."""
    at = new_app()
    at.query_params["c"] = conversation_id
    return at.run()


def _shown(at: AppTest) -> list[str]:
    return [message.markdown[0].value for message in at.chat_message]


@pytest.fixture(scope="module")
def asked_twice(uploaded: AppTest) -> tuple[str, AppTest, bool]:
    """A question, and another one asked while the first is still being answered.

    AppTest cannot interrupt its own script run as a browser does, so the first question is
    asked as an interrupted run leaves it: answering in the engine's worker, with no page
    following it. Its answer waits before the model's first word until the page, open on that
    conversation, has asked again."""
    engine = _engine()
    stream = engine.answering._stream
    reached, asked_again = threading.Event(), threading.Event()
    answering: list[bool] = []

    def held(*args, **kwargs):
        reached.set()
        asked_again.wait(TIMEOUT)
        yield from stream(*args, **kwargs)

    at = new_app().run()
    ask(at, OFF_TOPIC_QUESTION)  # creates the conversation (refused: no model call)
    conversation_id = at.query_params["c"]

    def release_once_queued() -> None:
        deadline = time.monotonic() + TIMEOUT
        while len(jobs := engine.chat.jobs(conversation_id)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        answering.append(len(jobs) == 2 and jobs[0] is first and not first.done)
        asked_again.set()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.answering, "_stream", held)
        first = engine.chat.ask(conversation_id, NUMBERS_QUESTION)
        assert reached.wait(TIMEOUT), "the first answer never reached the model"
        threading.Thread(target=release_once_queued, daemon=True).start()
        ask(at, FOLLOW_UP)
    return conversation_id, at, answering[0]


def test_a_question_asked_while_an_answer_streams_waits_and_both_complete(
    asked_twice: tuple[str, AppTest, bool],
) -> None:
    conversation_id, at, answering = asked_twice
    _no_exceptions(at)
    assert answering, "the first answer was complete before the second question: nothing tested"
    shown = _shown(at)
    assert shown[::2] == [OFF_TOPIC_QUESTION, NUMBERS_QUESTION, FOLLOW_UP]
    stored = _engine().conversations.messages(conversation_id)
    answers = [message for message in stored if message.role == "assistant"]
    assert answers[0].status == "refused"
    for message in answers[1:]:
        assert message.status in ("done", "refused"), (message.status, message.content)
        assert message.content.strip() and message.finished_at
    assert shown[1::2] == [link_markers(m.content, lambda n, m=m: f"#m{m.id}-s{n}")
                           for m in answers]
    assert not _engine().chat.jobs(conversation_id)
    assert not any("Waiting for" in caption.value for caption in at.caption)


def test_a_reload_reopens_the_conversation(asked_twice: tuple[str, AppTest, bool]) -> None:
    conversation_id, at, _ = asked_twice
    reloaded = _opened(conversation_id)
    _no_exceptions(reloaded)
    assert _shown(reloaded) == _shown(at)
    assert reloaded.sidebar.button(key=f"open-{conversation_id}").proto.type == "primary"


def test_after_a_restart_the_conversation_reopens_from_the_list(
    asked_twice: tuple[str, AppTest, bool],
) -> None:
    conversation_id, at, _ = asked_twice
    _clear_engine()  # a server restart: a new engine, its store opened from the data dir
    fresh = new_app().run()
    assert not fresh.chat_message
    listed = [button.key for button in fresh.sidebar.button if button.key.startswith("open-")]
    assert listed == [f"open-{c.id}" for c in _engine().conversations.list()]  # newest first
    button = fresh.sidebar.button(key=f"open-{conversation_id}")
    assert button.label == title_from(OFF_TOPIC_QUESTION)  # titled by its first question
    fresh.sidebar.button(key=f"open-{conversation_id}").click().run()
    _no_exceptions(fresh)
    assert fresh.query_params["c"] == conversation_id
    assert _shown(fresh) == _shown(at)


INJECTED = ('<script>window.pwned = 1</script>\n\n# Not a heading\n'
            '<img src="x" onerror="window.pwned = 2"> [link](javascript:alert(1))')


@pytest.fixture(scope="module")
def cited(uploaded: AppTest) -> tuple[str, int, list]:
    """A stored answer that cites its second source, over real passages and a hostile one."""
    from rag.types import Chunk, Hit

    engine = _engine()
    hits = engine.retrieve(NUMBERS_QUESTION).hits[:3]
    assert len(hits) == 3 and all(hit.chunk.page for hit in hits)
    hostile = Hit(Chunk("0" * 64, "hostile.html", 0, INJECTED, 0, len(INJECTED)), 0.41)
    sentence = hits[1].chunk.text.split(". ")[0]
    store = engine.conversations
    conversation = store.create()
    store.add_message(conversation.id, "user", NUMBERS_QUESTION)
    answer = store.add_message(
        conversation.id, "assistant", f"{sentence} [2].", status="done",
        sources=[*hits, hostile], cited=(2,), meta={"attributed": False, "overview": 0},
    )
    return conversation.id, answer.id, hits


def test_a_cited_marker_links_to_its_source_and_uncited_ones_are_not_marked(
    cited: tuple[str, int, list],
) -> None:
    conversation_id, message_id, _ = cited
    at = _opened(conversation_id)
    _no_exceptions(at)
    assistant = at.chat_message[1]
    assert f"[[2]](#m{message_id}-s2)" in assistant.markdown[0].value
    labels = [expander.label for expander in assistant.expander]
    assert labels[0].startswith("[2] ") and "cited" in labels[0], labels
    assert [label.split(" ")[0] for label in labels] == ["[2]", "[1]", "[3]", "[4]"]
    assert not any("cited" in label for label in labels[1:]), labels
    passages = [m.value for m in assistant.markdown if m.value.startswith("<div")]
    assert f'id="m{message_id}-s2"' in passages[0] and "<mark>" in passages[0]
    hostile = passages[3]
    assert "<script>" not in hostile and "<img" not in hostile and "\n" not in hostile
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in hostile


def test_a_cited_pdf_page_can_be_viewed(cited: tuple[str, int, list]) -> None:
    conversation_id, message_id, hits = cited
    at = _opened(conversation_id)
    assert not at.image  # drawn only when asked for
    at.toggle(key=f"m{message_id}-page-2").set_value(True).run()
    _no_exceptions(at)
    assert at.image[0].captions == [f"tracemonkey.pdf, page {hits[1].chunk.page}"]


def test_rename_export_and_delete_with_confirmation(uploaded: AppTest) -> None:
    from rag.conversation_export import to_markdown

    at = ask(new_app().run(), OFF_TOPIC_QUESTION)
    conversation_id = at.query_params["c"]
    store = _engine().conversations
    at.text_input(key=f"title-{conversation_id}").input("Cookies").run()
    _no_exceptions(at)
    assert store.get(conversation_id).title == "Cookies"
    assert at.sidebar.button(key=f"open-{conversation_id}").label == "Cookies"
    assert at.main.subheader[0].value == "Cookies"

    assert at.get("download_button")[0].label == "Export as Markdown"
    exported = to_markdown(store.get(conversation_id), store.messages(conversation_id))
    assert "Cookies" in exported and OFF_TOPIC_QUESTION in exported and REFUSAL in exported

    at.button(key="delete-conversation").click().run()
    assert any("Delete “Cookies”?" in warning.value for warning in at.warning)
    at.button(key="cancel-delete-conversation").click().run()
    assert store.get(conversation_id) is not None and not at.warning
    at.button(key="delete-conversation").click().run()
    at.button(key="confirm-delete-conversation").click().run()
    _no_exceptions(at)
    assert store.get(conversation_id) is None and not store.messages(conversation_id)
    assert not at.chat_message and "c" not in at.query_params
    assert not any(button.key == f"open-{conversation_id}" for button in at.sidebar.button)


def test_a_conversation_scoped_to_a_document_answers_an_overview(uploaded: AppTest) -> None:
    doc_id = next(info.doc_id for info in _engine().documents()
                  if info.source == "tracemonkey.pdf")
    at = new_app().run()
    assert any("belong" in caption.value or "stored with this index" in caption.value
               for caption in at.sidebar.caption)
    at.multiselect(key="scope-new").select(doc_id).run()
    ask(at, "What is this document about?")
    _no_exceptions(at)
    conversation_id = at.query_params["c"]
    assert _engine().conversations.get(conversation_id).documents == (doc_id,)
    assert at.multiselect(key=f"scope-{conversation_id}").value == [doc_id]
    assistant = at.chat_message[1]
    overview = [c.value for c in assistant.caption if c.value.startswith("Overview drawn from")]
    assert overview, [c.value for c in assistant.caption]
    assert len(assistant.expander) > 1
    pages = {label.split(" — ")[1] for label in (e.label for e in assistant.expander)}
    assert len(pages) > 1, pages  # a spread over the document, not one fragment

    at.multiselect(key=f"scope-{conversation_id}").unselect(doc_id).run()
    assert _engine().conversations.get(conversation_id).documents == ()


# --- Settings page -------------------------------------------------------------------------------


@pytest.fixture
def default_settings(app_env: Path) -> Iterator[Path]:
    """No saved settings before and after the test, and an engine built from them."""

    def reset() -> None:
        (app_env / "settings.json").unlink(missing_ok=True)
        _clear_engine()

    reset()
    yield app_env
    reset()


def settings_page() -> AppTest:
    at = new_app().run()
    at.switch_page("app_pages/settings.py").run()
    _no_exceptions(at)
    return at


def save(at: AppTest) -> AppTest:
    at.button(key="save-settings").click().run()
    _no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
    return at


def test_threshold_one_saved_on_settings_refuses_without_the_llm(
    uploaded: AppTest, default_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = settings_page()
    at.slider(key="setting-similarity_threshold").set_value(1.0)
    save(at)
    assert any("similarity_threshold" in s.value for s in at.success)
    assert at.slider(key="setting-similarity_threshold").value == 1.0

    from ui.state import get_rag

    def no_llm(*args: object, **kwargs: object) -> None:
        raise AssertionError("a refused question must not reach the language model")

    monkeypatch.setattr(get_rag().answering, "_stream", no_llm)
    at.switch_page("app_pages/chat.py").run()
    ask(at, NUMBERS_QUESTION)  # answerable at the default threshold
    _no_exceptions(at)
    assistant = at.chat_message[1]
    assert assistant.markdown[0].value == REFUSAL
    assert not assistant.expander
    assert any("similarity threshold 1.00" in c.value for c in assistant.caption)


def test_bad_values_are_not_saved(uploaded: AppTest, default_settings: Path) -> None:
    at = settings_page()
    at.slider(key="setting-chunk_size").set_value(64)
    at.slider(key="setting-chunk_overlap").set_value(100)
    at.button(key="save-settings").click().run()
    _no_exceptions(at)
    assert any("chunk_overlap" in e.value and "smaller than chunk_size" in e.value
               for e in at.error)
    assert not (default_settings / "settings.json").exists()


def test_chunk_size_change_asks_for_a_reindex(uploaded: AppTest, default_settings: Path) -> None:
    from ui.state import get_rag

    before = {info.source: info.chunks for info in get_rag().documents()}
    at = settings_page()
    at.slider(key="setting-chunk_size").set_value(96)
    save(at)
    assert any("The index was built with other settings" in w.value for w in at.warning)

    at.switch_page("app_pages/chat.py").run()
    assert any("The index was built with other settings" in w.value for w in at.warning)

    at.switch_page("app_pages/documents.py").run()
    warnings = [w.value for w in at.warning if "The index was built with other settings" in w.value]
    assert warnings and "chunk size" in warnings[0], warnings
    at.button(key="reindex-all").click().run()
    _no_exceptions(at)
    assert not any("The index was built with other settings" in w.value for w in at.warning)
    assert any("tracemonkey.pdf: re-indexed" in s.value for s in at.success)
    assert "tracemonkey.pdf" in [t.value for t in at.text]
    after = {info.source: info.chunks for info in get_rag().documents()}
    assert after["tracemonkey.pdf"] > before["tracemonkey.pdf"], (before, after)
    assert any(f"{after['tracemonkey.pdf']} chunks" in c.value for c in at.caption)
    at.run()
    assert not any("The index was built with other settings" in w.value for w in at.warning)


def test_saved_settings_survive_a_restart(uploaded: AppTest, default_settings: Path) -> None:
    at = settings_page()
    at.slider(key="setting-top_k").set_value(9)
    save(at)
    _clear_engine()  # a server restart: a new engine from load_settings()

    at = settings_page()
    assert at.slider(key="setting-top_k").value == 9
    assert [c.value for c in at.caption].count("Value: saved on this page") == 1
    from ui.state import get_rag

    assert get_rag().settings.top_k == 9


def test_a_field_set_by_the_environment_is_locked(
    uploaded: AppTest, default_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_TOP_K", "7")
    _clear_engine()
    at = settings_page()
    top_k = at.slider(key="setting-top_k")
    assert top_k.value == 7 and top_k.disabled
    assert not at.slider(key="setting-fetch_multiplier").disabled
    captions = [c.value for c in at.caption]
    assert "Set by the environment (RAG_TOP_K); change it there." in captions
    assert "Default: 5" in top_k.help


def test_saved_settings_that_no_longer_fit_do_not_stop_the_app(
    uploaded: AppTest, default_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saved overlap 100 was fine with the saved size; the operator now sets a smaller size."""
    (default_settings / "settings.json").write_text('{"chunk_overlap": 100}', encoding="utf-8")
    monkeypatch.setenv("RAG_CHUNK_SIZE", "64")
    _clear_engine()
    at = settings_page()
    problems = [e.value for e in at.sidebar.error]
    assert any("were not applied" in p and "chunk_overlap" in p for p in problems), problems
    assert at.slider(key="setting-chunk_overlap").value == 24  # the default, not the saved 100

    at.button(key="forget-settings").click().run()
    _no_exceptions(at)
    assert not (default_settings / "settings.json").exists()
    assert not at.sidebar.error
    assert any("forgotten" in s.value for s in at.success)


def test_an_api_key_typed_here_is_used_but_never_saved_or_shown(
    uploaded: AppTest, default_settings: Path
) -> None:
    from ui.state import get_rag

    secret = "sk-test-never-shown-0123456789"
    at = settings_page()
    assert at.text_input(key="api-key-input").value == ""
    at.text_input(key="api-key-input").input(secret)
    at.button(key="use-api-key").click().run()
    _no_exceptions(at)
    assert any("until restart" in s.value and "not saved" in s.value for s in at.success)
    assert get_rag().settings.llm_api_key.get_secret_value() == secret
    assert at.text_input(key="api-key-input").value == ""  # cleared, not echoed back
    at.slider(key="setting-top_k").set_value(6)
    save(at)  # saving other settings keeps the typed key in force and off the disk
    assert get_rag().settings.llm_api_key.get_secret_value() == secret
    assert secret not in (default_settings / "settings.json").read_text(encoding="utf-8")
    assert secret not in str(at._tree)


# --- Evaluation page -----------------------------------------------------------------------------

SAMPLE_CHOICE = "The sample (questions about this app's README)"


@pytest.fixture
def readme_removed_after(default_settings: Path) -> Iterator[None]:
    """The sample indexes README.md into this module's index; later tests count documents."""
    yield
    from ui.state import get_rag

    engine = get_rag()
    for info in engine.documents():
        if info.source == "README.md":
            engine.delete(info.doc_id)


def test_evaluation_page_runs_the_sample_after_indexing_the_readme(
    uploaded: AppTest, readme_removed_after: None
) -> None:
    at = new_app().run()
    at.switch_page("app_pages/evaluation.py").run()
    _no_exceptions(at)
    assert not at.main.metric
    at.radio(key="question-set").set_value(SAMPLE_CHOICE).run()
    assert any("README.md, which is not indexed" in i.value for i in at.info)
    at.button(key="index-readme").click().run()
    _no_exceptions(at)
    assert any("README.md: indexed" in s.value for s in at.success)

    at.button(key="run-evaluation").click().run()
    _no_exceptions(at)
    metrics = {m.label: m.value for m in at.main.metric}
    assert list(metrics) == ["Recall@5", "nDCG@10", "MRR@10", "Refusal accuracy"], metrics
    assert float(metrics["Recall@5"]) >= 0.75, metrics  # the README answers every sample question
    assert 0 < float(metrics["nDCG@10"]) <= 1 and 0 < float(metrics["MRR@10"]) <= 1
    assert metrics["Refusal accuracy"].endswith("%")
    table = at.dataframe[0].value
    assert list(table.columns) == ["question", "found at rank", "best similarity", "refused",
                                   "expected"]
    assert len(table) == 18
    off_topic = table[table["expected"] == "nothing: should be refused"]
    assert len(off_topic) == 6 and off_topic["refused"].all()  # far below the 0.40 threshold
    assert len(at.expander) == 18

    at.run()  # the results survive a rerun
    assert [m.label for m in at.main.metric] == list(metrics)
    assert len(at.dataframe[0].value) == 18


# --- The ingest queue ----------------------------------------------------------------------------

ENCRYPTED = "pdfs/pypdf-resources/encryption/r4-user-password.pdf"  # user password "asdfzxcv"


@pytest.fixture
def locked_removed_after(app_env: Path) -> Iterator[None]:
    """Nothing of this test left for another: its document, and the finished jobs."""
    yield
    engine = _engine()
    for info in engine.documents():
        if info.source == "locked.pdf":
            engine.delete(info.doc_id)
    engine.queue.forget_finished()


def test_an_encrypted_pdf_is_retried_with_the_typed_password_which_is_not_kept(
    uploaded: AppTest, bench_data: Path, locked_removed_after: None
) -> None:
    at = new_app().run()
    at.switch_page("app_pages/documents.py").run()
    at.file_uploader[0].upload("locked.pdf", (bench_data / ENCRYPTED).read_bytes(),
                               "application/pdf").run()
    _after_the_queue(at)
    assert any("locked.pdf" in row and "no password given" in row for row in _queue_rows(at))
    failed = _job_id("locked.pdf")
    retry = at.button(key=f"retry-job-{failed}")
    assert retry.label == "Retry with password" and retry.disabled  # nothing typed yet

    at.text_input(key="ingest-password").input("asdfzxcv").run()
    at.button(key=f"retry-job-{failed}").click().run()
    _no_exceptions(at)
    assert at.text_input(key="ingest-password").value == ""  # used for that job, then cleared
    _after_the_queue(at)
    assert any("locked.pdf" in row and "indexed, " in row for row in _queue_rows(at))
    assert "locked.pdf" in [t.value for t in at.text]
    assert "asdfzxcv" not in str(at._tree)

    at.button(key="clear-finished").click().run()
    _no_exceptions(at)
    assert not _queue_rows(at) and not _engine().queue.jobs.jobs()
    assert "locked.pdf" in [t.value for t in at.text]  # the document stays


def test_every_page_s_sidebar_says_what_is_being_indexed(uploaded: AppTest) -> None:
    """A job held running by this test's process (as a CLI ingest beside the app would be) and
    one waiting behind it: each page's sidebar names the file, its stage and the queue."""
    engine = _engine()
    assert engine.queue.wait_idle(TIMEOUT)  # the worker is idle and claims nothing meanwhile
    jobs = engine.queue.jobs
    held, _ = jobs.add("held.md", "f" * 64)
    assert jobs.claim(os.getpid()) == jobs.get(held.id)
    waiting, _ = jobs.add("waiting.md", "e" * 64)
    jobs.progress(held.id, "embedding", 64, 200)
    try:
        for page in (None, "app_pages/documents.py", "app_pages/settings.py"):
            at = new_app().run()
            if page:
                at.switch_page(page).run()
            _no_exceptions(at)
            captions = [caption.value for caption in at.sidebar.caption]
            assert "Indexing 1 of 2: held.md — embedding 64/200 chunks" in captions, (page,
                                                                                       captions)
            assert "1 queued" in captions, (page, captions)
            assert [bar.value for bar in at.sidebar.get("progress")] == [32], page
    finally:
        for job in (held, waiting):
            jobs.finish(job.id, "cancelled")
        engine.queue.forget_finished()
    at = new_app().run()
    assert not any("Indexing" in caption.value for caption in at.sidebar.caption)


def test_the_chat_page_says_files_are_on_their_way_before_the_first_is_indexed(
        app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty index while a drop is being indexed: how many files are coming, not "nothing
    is indexed yet" (which users read as their upload lost)."""
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    _clear_engine()
    try:
        engine = _engine()
        assert engine.queue.wait_idle(TIMEOUT)  # idle: it claims nothing the test adds
        jobs = engine.queue.jobs
        held, _ = jobs.add("held.md", "f" * 64)
        assert jobs.claim(os.getpid()) == jobs.get(held.id)
        waiting, _ = jobs.add("waiting.md", "e" * 64)
        at = new_app().run()
        _no_exceptions(at)
        coming = ("Indexing 2 files: ask as soon as the first one is done; the sidebar shows how "
                  "far it got.")
        assert [info.value for info in at.info] == [coming]
        for job in (held, waiting):
            jobs.finish(job.id, "cancelled")
        at = new_app().run()
        assert [info.value for info in at.info] == [
            "Nothing is indexed yet: add files on the Documents page."]
    finally:
        _clear_engine()


def test_queue_rows_say_how_far_each_file_got() -> None:
    from dataclasses import replace

    from rag.ingest_jobs import Job
    from ui.ingest_queue import progress_text

    job = Job(1, "a.txt", "0" * 64, "running", "embedding", 256, 400, 0, None, (), 1, False,
              "", "")
    assert progress_text(job) == "embedding 256 of 400 chunks"
    assert progress_text(job, of="/") == "embedding 256/400 chunks"  # the sidebar's
    assert progress_text(replace(job, done=0)) == "embedding 400 chunks"
    assert progress_text(replace(job, stage="parsed", done=12, total=12)) == "parsed 12 pages"
    assert progress_text(replace(job, cancel=True)) == "stopping…"
    failed = replace(job, status="failed", error="a.txt: empty file")
    assert progress_text(failed) == "failed: empty file"


def test_the_uploader_names_every_format_the_loaders_accept() -> None:
    from ui.uploads import formats_text

    assert formats_text((".md", ".pdf", ".markdown", ".odt")) == "PDF, Markdown or ODT"
    assert formats_text((".txt",)) == "text"
