"""Questions asked at once share a forward pass: the batching itself with a recording encoder
(threads held on events, so which batch a question joins is certain), then the real encoder
from many threads at once against the same questions embedded one by one."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from rag.query_batching import QueryBatcher


class Recording:
    """Embeds a text as [its length]; the first call waits until `release` is set."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.fail = fail

    def __call__(self, texts):
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.entered.set()
            assert self.release.wait(30)
        if self.fail:
            raise RuntimeError(f"encoder broke on {len(texts)} texts")
        return np.array([[float(len(text))] for text in texts])


def _queued(batcher: QueryBatcher, count: int) -> None:
    with batcher._changed:
        assert batcher._changed.wait_for(lambda: len(batcher._waiting) == count, timeout=30)


def test_a_lone_question_is_embedded_at_once():
    encoder = Recording()
    encoder.release.set()
    assert QueryBatcher(encoder).embed("abc").tolist() == [3.0]
    assert encoder.calls == [["abc"]]


def test_questions_arriving_during_a_batch_go_together_in_the_next():
    encoder = Recording()
    batcher = QueryBatcher(encoder)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.embed, "a")
        assert encoder.entered.wait(30)
        later = {text: pool.submit(batcher.embed, text) for text in ("bb", "ccc", "dddd")}
        _queued(batcher, 3)
        encoder.release.set()
        assert first.result(30).tolist() == [1.0]
        assert {text: future.result(30).tolist() for text, future in later.items()} == {
            "bb": [2.0], "ccc": [3.0], "dddd": [4.0]}
    assert encoder.calls[0] == ["a"]
    assert sorted(encoder.calls[1]) == ["bb", "ccc", "dddd"] and len(encoder.calls) == 2


def test_a_failing_batch_fails_each_of_its_questions_and_the_next_still_runs():
    encoder = Recording(fail=True)
    batcher = QueryBatcher(encoder)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(batcher.embed, "a")
        assert encoder.entered.wait(30)
        later = [pool.submit(batcher.embed, text) for text in ("bb", "ccc")]
        _queued(batcher, 2)
        encoder.release.set()
        for future in (first, *later):
            with pytest.raises(RuntimeError, match="encoder broke"):
                future.result(30)
    encoder.fail = False
    assert batcher.embed("eeeee").tolist() == [5.0]


def test_the_real_encoder_gives_each_thread_its_own_question_s_vector(embedder):
    questions = [f"question {number}: how does {topic} work?" for number, topic in
                 enumerate(["TLS", "cookie scoping", "a borrow checker", "tracing JITs"] * 4)]
    alone = np.stack([embedder.embed([question])[0] for question in questions])
    start = threading.Barrier(len(questions))

    def ask(question: str) -> np.ndarray:
        start.wait(30)
        return embedder.embed_query(question)

    with ThreadPoolExecutor(len(questions)) as pool:
        together = np.stack(list(pool.map(ask, questions)))
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert len({tuple(np.round(row, 4)) for row in together}) == len(questions)


def test_questions_on_one_core_leave_other_threads_encoding_on_every_core(embedder):
    """torch's per-thread thread count: a question embedded on one core in one thread must not
    become the count of a thread that set its own before its first encode (the ingest worker)."""
    cores = {}
    worker_set, question_done = threading.Event(), threading.Event()

    def ingest_worker():
        embedder._use_cores(os.cpu_count() or 1)
        worker_set.set()
        assert question_done.wait(30)
        embedder.embed(["a passage the worker embeds after the question"])
        cores["worker"] = torch.get_num_threads()

    def asker():
        assert worker_set.wait(30)
        embedder.embed_query("a question")
        cores["asker"] = torch.get_num_threads()
        question_done.set()

    threads = [threading.Thread(target=ingest_worker), threading.Thread(target=asker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert cores == {"worker": os.cpu_count() or 1, "asker": 1}
