"""Stored conversations: order, titles, round-trips, restarts, two processes, threads, export."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime

import pytest

from rag.conversation_export import to_markdown
from rag.conversations import FILE_NAME, NEW_CHAT, TITLE_LENGTH, ConversationStore, title_from
from rag.types import Chunk, Hit

PDF_HIT = Hit(Chunk("a" * 64, "tracemonkey.pdf", 41, "The experiments ran on a MacBook Pro.",
                    120, 157, page=10), similarity=0.6123, lexical=7.5, fused=0.81)
MD_HIT = Hit(Chunk("b" * 64, "rust-book.md", 3, "Ownership rules.", 0, 16,
                   heading="Ownership > The Stack and the Heap"),
             similarity=0.4009, rerank_score=-1.25)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "data" / FILE_NAME


@pytest.fixture
def store(path):
    store = ConversationStore(path)
    yield store
    store.close()


def test_newest_first_rename_and_delete_cascades(store, path):
    made = [store.create() for _ in range(30)]  # within a few clock ticks: ties must not reorder
    assert [c.id for c in store.list()] == [c.id for c in reversed(made)]
    stamps = [c.updated_at for c in reversed(store.list())]
    assert stamps == sorted(set(stamps))

    first, second = made[0], made[1]
    store.add_message(first.id, "user", "What machine ran the benchmarks?")
    assert store.list()[0].id == first.id
    store.rename(second.id, "Benchmarks")
    assert [c.id for c in store.list()[:2]] == [second.id, first.id]
    assert store.get(second.id).title == "Benchmarks"

    store.add_message(first.id, "assistant", "A MacBook Pro [1].", sources=[PDF_HIT])
    store.delete(first.id)
    store.delete(first.id)  # already gone: no error
    assert store.get(first.id) is None and store.messages(first.id) == []
    with sqlite3.connect(path) as raw:  # the rows are gone, not just hidden
        assert raw.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with pytest.raises(KeyError):
        store.rename(first.id, "gone")


def test_order_holds_when_the_clock_stands_still(store, monkeypatch):
    """Two tabs, or the app and the CLI, may write within one clock tick, or after the clock
    was set back: "newest first" must still mean the last one written."""

    class StoppedClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    monkeypatch.setattr("rag.conversations.datetime", StoppedClock)
    first, second, third = store.create(), store.create(), store.create()
    store.add_message(first.id, "user", "Back on top?")
    assert [c.id for c in store.list()] == [first.id, third.id, second.id]
    stamps = [c.updated_at for c in store.list()]
    assert stamps == sorted(set(stamps), reverse=True)


def test_title_comes_from_the_first_question(store):
    conversation = store.create()
    assert conversation.title == NEW_CHAT
    store.add_message(conversation.id, "assistant", "Hello, ask me about your documents.")
    assert store.get(conversation.id).title == NEW_CHAT  # only a question names it
    store.add_message(conversation.id, "user", "  What machine were the experiments run on?\n"
                                               "And how much RAM?")
    assert store.get(conversation.id).title == "What machine were the experiments run on?"
    store.add_message(conversation.id, "user", "Which operating system?")
    assert store.get(conversation.id).title == "What machine were the experiments run on?"

    renamed = store.create("My notes")
    store.add_message(renamed.id, "user", "What is ownership?")
    assert store.get(renamed.id).title == "My notes"


def test_a_long_question_is_cut_on_a_word_boundary():
    question = ("Which operating system and how much memory did the machine that ran the "
                "TraceMonkey benchmark experiments have?")
    title = title_from(question)
    assert title.endswith("…") and len(title) <= TITLE_LENGTH + 1
    kept = title[:-1]
    assert question.startswith(kept) and question[len(kept)] == " "
    assert title_from(" \n\t") == NEW_CHAT
    assert title_from("x" * 100) == "x" * TITLE_LENGTH + "…"  # one long word is still cut


def test_messages_round_trip_with_sources_scores_and_citations(store):
    conversation = store.create(documents=["a" * 64])
    question = store.add_message(conversation.id, "user", "What machine ran the benchmarks?")
    answer = store.add_message(conversation.id, "assistant", "", status="queued")
    assert (question.status, question.finished_at) == ("done", question.created_at)
    assert (answer.status, answer.finished_at) == ("queued", None)

    store.update_message(answer.id, status="streaming", content="A MacBook")
    assert store.messages(conversation.id)[1].finished_at is None
    store.update_message(
        answer.id, status="done", content="A MacBook Pro [1].", searched="What machine ran?",
        sources=[PDF_HIT, MD_HIT], cited=[1], note="attributed by similarity",
        meta={"attributed": True, "overview": 0},
    )
    stored_question, stored = store.messages(conversation.id)
    assert stored_question == question
    assert stored.sources == (PDF_HIT, MD_HIT)  # every score, page and heading survive JSON
    assert stored.sources[0].chunk.page == 10 and stored.sources[0].fused == 0.81
    assert stored.sources[1].chunk.heading == "Ownership > The Stack and the Heap"
    assert stored.sources[1].rerank_score == -1.25 and stored.sources[1].lexical is None
    assert (stored.content, stored.status, stored.searched) == (
        "A MacBook Pro [1].", "done", "What machine ran?")
    assert stored.cited == (1,) and stored.note == "attributed by similarity"
    assert stored.meta == {"attributed": True, "overview": 0}
    assert stored.finished_at is not None and stored.finished_at >= stored.created_at
    assert store.get(conversation.id).documents == ("a" * 64,)
    store.set_documents(conversation.id, [])
    assert store.get(conversation.id).documents == ()


def test_bad_writes_are_refused_and_change_nothing(store):
    conversation = store.create()
    with pytest.raises(KeyError):
        store.add_message("no-such-id", "user", "Lost?")
    with pytest.raises(ValueError):
        store.add_message(conversation.id, "assistant", "", status="thinking")
    message = store.add_message(conversation.id, "user", "Hello?")
    with pytest.raises(TypeError):
        store.update_message(message.id, role="assistant")
    with pytest.raises(KeyError):
        store.update_message(message.id + 100, content="nobody")
    assert store.messages(conversation.id) == [message]
    assert store.list()[0].title == "Hello?"


def test_a_restart_shows_the_same_conversations(path):
    before = ConversationStore(path)
    conversation = before.create()
    before.add_message(conversation.id, "user", "What is ownership?")
    before.add_message(conversation.id, "assistant", "A set of rules [1].", sources=[MD_HIT],
                       cited=[1])
    listed, messages = before.list(), before.messages(conversation.id)
    before.close()

    after = ConversationStore(path)
    try:
        assert after.list() == listed
        assert after.messages(conversation.id) == messages
        assert after.get(conversation.id).title == "What is ownership?"
    finally:
        after.close()


def test_two_stores_on_one_file_see_each_others_writes(path):
    app, cli = ConversationStore(path), ConversationStore(path)
    try:
        conversation = app.create()
        cli.add_message(conversation.id, "user", "How much RAM did it have?")
        assert [m.content for m in app.messages(conversation.id)] == ["How much RAM did it have?"]
        assert app.get(conversation.id).title == "How much RAM did it have?"
        app.rename(conversation.id, "RAM")
        assert cli.find("RAM").id == conversation.id
        cli.delete(conversation.id)
        assert app.list() == []
    finally:
        app.close()
        cli.close()


def test_writers_and_a_reader_at_once(path):
    """The app's script thread and its answer worker share one store; the CLI has its own."""
    app, cli = ConversationStore(path), ConversationStore(path)
    conversation = app.create()
    errors: list[BaseException] = []
    writing = threading.Event()

    def write(store: ConversationStore, name: str) -> None:
        try:
            for n in range(100):
                message = store.add_message(conversation.id, "assistant", "", status="streaming")
                store.update_message(message.id, content=f"{name} {n}", status="done")
                writing.set()
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)

    def read() -> None:
        try:
            seen = 0
            while writers[0].is_alive() or writers[1].is_alive():
                messages = app.messages(conversation.id)
                assert len(messages) >= seen  # committed rows never disappear
                assert [m.id for m in messages] == sorted(m.id for m in messages)
                seen = len(messages)
                app.list()
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    writers = [threading.Thread(target=write, args=(app, "app")),
               threading.Thread(target=write, args=(cli, "cli"))]
    reader = threading.Thread(target=read)
    try:
        for thread in writers:
            thread.start()
        writing.wait(10)
        reader.start()
        for thread in (*writers, reader):
            thread.join(60)
        assert not errors, errors
        messages = cli.messages(conversation.id)
        assert len(messages) == 200 and {m.status for m in messages} == {"done"}
        for name in ("app", "cli"):  # each writer's messages in the order it wrote them
            assert [m.content for m in messages if m.content.startswith(name)] == [
                f"{name} {n}" for n in range(100)]
    finally:
        app.close()
        cli.close()


def test_mark_interrupted_keeps_the_partial_answers(store):
    conversation = store.create()
    store.add_message(conversation.id, "user", "First?")
    done = store.add_message(conversation.id, "assistant", "Done [1].", sources=[PDF_HIT])
    streaming = store.add_message(conversation.id, "assistant", "", status="streaming")
    store.update_message(streaming.id, content="The machine was")
    queued = store.add_message(conversation.id, "assistant", "", status="queued")

    assert store.mark_interrupted() == 2
    by_id = {m.id: m for m in store.messages(conversation.id)}
    assert by_id[streaming.id].status == "interrupted"
    assert by_id[streaming.id].content == "The machine was"
    assert by_id[queued.id].status == "interrupted" and by_id[queued.id].finished_at
    assert by_id[done.id] == done
    assert store.mark_interrupted() == 0


def test_find_by_id_then_by_newest_exact_title(store):
    older = store.create("Benchmarks")
    newer = store.create("Benchmarks")
    assert store.find(older.id) == older
    assert store.find("Benchmarks").id == newer.id
    store.add_message(older.id, "user", "Still here?")
    assert store.find("Benchmarks").id == older.id  # newest by activity, not by creation
    assert store.find("benchmarks") is None and store.find("nothing") is None


def test_export_has_questions_answers_sources_and_cited_marks(store):
    conversation = store.create()
    store.add_message(conversation.id, "user", "What machine ran the benchmarks?")
    store.add_message(conversation.id, "assistant", "A MacBook Pro [1].",
                      searched="What machine ran the TraceMonkey benchmarks?",
                      sources=[PDF_HIT, MD_HIT], cited=[1], note="attributed by similarity")
    store.add_message(conversation.id, "user", "How much RAM?")
    store.add_message(conversation.id, "assistant", "It had", status="streaming")
    store.mark_interrupted()

    markdown = to_markdown(store.get(conversation.id), store.messages(conversation.id))
    lines = markdown.splitlines()
    assert lines[0] == "# What machine ran the benchmarks?"
    assert lines[2].startswith("Created ") and "UTC" in lines[2]
    for line in ("**You:** What machine ran the benchmarks?",
                 "*Searched for: What machine ran the TraceMonkey benchmarks?*",
                 "**Assistant:** A MacBook Pro [1].",
                 "Sources:",
                 "1. tracemonkey.pdf, page 10 — similarity 0.612 (cited)",
                 "2. rust-book.md, section Ownership > The Stack and the Heap — similarity 0.401",
                 "*attributed by similarity*",
                 "**You:** How much RAM?",
                 "**Assistant:** It had",
                 "*(Answer interrupted before it finished.)*"):
        assert line in lines, line
    assert lines.index("**You:** What machine ran the benchmarks?") < lines.index(
        "**Assistant:** A MacBook Pro [1].") < lines.index("**You:** How much RAM?")
