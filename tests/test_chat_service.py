"""The engine's answer worker with real parts: SmolLM2 in-process, the real embedder, a Chroma
folder and the SQLite conversation store. Every wait is on the job's own events."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rag.chat_service import turns
from rag.config import Settings
from rag.generation import FAILURE_PREFIX, REFUSAL, create_llm
from rag.pipeline import RAG

NUMBERS = "How are JavaScript numbers represented as integers in traces?"
MACHINE = "What machine were the TraceMonkey benchmark experiments run on?"
RAM = "How much RAM did it have?"
OFF_TOPIC = "What is a good recipe for chocolate chip cookies?"


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder, smollm_gguf, bench_data) -> RAG:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), llm_gguf=smollm_gguf,
                        llm_max_tokens=32, followup_method="previous-questions")
    rag = RAG(settings, embedder=embedder, llm=create_llm(settings))
    [result] = rag.ingest([("tracemonkey.pdf",
                            (bench_data / "pdfs/pdfjs/tracemonkey.pdf").read_bytes())])
    assert result.status == "indexed"
    return rag


def test_a_second_question_waits_for_the_first_answer_and_both_are_stored(engine):
    conversation = engine.conversations.create()
    first = engine.chat.ask(conversation.id, MACHINE)
    second = engine.chat.ask(conversation.id, RAM)  # asked while the first is being answered
    assert [job.question for job in engine.chat.jobs(conversation.id)][-1] == RAM
    followed = "".join(first.follow())
    assert first.done and followed == first.text and followed.strip()
    assert second.wait(timeout=300)
    assert engine.chat.jobs(conversation.id) == []

    messages = engine.conversations.messages(conversation.id)
    assert [(m.role, m.content if m.role == "user" else None) for m in messages] == [
        ("user", MACHINE), ("assistant", None), ("user", RAM), ("assistant", None)]
    answered = messages[1]
    assert answered.status == "done" and answered.content.strip() and answered.finished_at
    assert answered.sources[0].chunk.page == 10 and answered.searched == MACHINE
    assert answered.cited, "cited by the model or matched by similarity, never nothing"
    follow_up = messages[3]
    assert follow_up.status == "done", follow_up.note
    assert follow_up.searched == f"{RAM} {MACHINE}", "searched with the first question"
    assert 10 in [hit.chunk.page for hit in follow_up.sources]
    assert engine.conversations.get(conversation.id).title.startswith("What machine")


def test_a_refusal_is_stored_with_its_note_and_no_sources(engine):
    conversation = engine.conversations.create()
    job = engine.chat.ask(conversation.id, OFF_TOPIC)
    assert job.wait(timeout=120) and job.refused
    [_, answer] = engine.conversations.messages(conversation.id)
    assert (answer.status, answer.content, answer.sources) == ("refused", REFUSAL, ())
    assert "similarity threshold" in answer.note


def test_an_answer_the_model_declines_is_stored_as_refused_with_its_sources(engine):
    # the same index; every first token over the cut-off 0 declines
    eager = RAG(engine.settings.model_copy(update={"decline_probability": 0.0}),
                embedder=engine.embedder, llm=engine.llm)
    conversation = eager.conversations.create()
    job = eager.chat.ask(conversation.id, NUMBERS)
    assert job.wait(timeout=300) and not job.refused and job.preview is not None
    [_, answer] = eager.conversations.messages(conversation.id)
    assert (answer.status, answer.content) == ("refused", REFUSAL)
    assert answer.sources and "do not state this" in answer.note
    assert answer.meta["prompt_tokens"] > 0


def test_a_failed_model_call_keeps_the_question_and_stores_the_failure(
        tmp_path, embedder, bench_data, unused_port):
    settings = Settings(data_dir=tmp_path, llm_base_url=f"http://127.0.0.1:{unused_port}/v1",
                        llm_timeout_s=5)
    rag = RAG(settings, embedder=embedder)
    rag.ingest([("tracemonkey.pdf", (bench_data / "pdfs/pdfjs/tracemonkey.pdf").read_bytes())])
    conversation = rag.conversations.create()
    job = rag.chat.ask(conversation.id, NUMBERS)
    assert job.wait(timeout=120)
    [question, answer] = rag.conversations.messages(conversation.id)
    assert question.content == NUMBERS
    assert answer.status == "failed" and FAILURE_PREFIX.strip() in answer.content
    assert answer.sources, "the sources found stay with the failed answer"
    assert turns(rag.conversations.messages(conversation.id))[0].answer == "", \
        "a failed answer is no context for the next search"


def test_an_answer_cut_off_by_a_dead_process_is_marked_interrupted(engine, tmp_path):
    store = engine.conversations
    conversation = store.create()
    store.add_message(conversation.id, "user", MACHINE)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(dead.stdout)  # a process that has certainly ended
    stale = store.add_message(conversation.id, "assistant", "The experiments ran on a Mac",
                              status="streaming", meta={"pid": dead})
    live = store.add_message(conversation.id, "assistant", "", status="queued",
                             meta={"pid": os.getppid()})
    assert RAG(engine.settings, embedder=engine.embedder).chat, "a restart: a new engine's worker"
    statuses = {m.id: (m.status, m.content) for m in store.messages(conversation.id)}
    assert statuses[stale.id] == ("interrupted", "The experiments ran on a Mac")
    assert statuses[live.id][0] == "queued", "another running process's answer is left alone"
