"""Question sets: parsing with errors a user can act on, relevance, and runs scored by trec_eval."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag.config import Settings
from rag.pipeline import RAG
from rag.question_sets import (
    MAX_QUESTIONS,
    Question,
    is_relevant,
    parse_question_set,
    run_question_set,
)
from rag.retrieval import threshold_gate
from rag.types import Chunk, Hit
from tests.conftest import REPO

OWNERSHIP = "rust-book-ch04-01-what-is-ownership.md"
COOKIES = "What is a good recipe for chocolate chip cookies?"


def hit(source: str, text: str, ordinal: int = 0, similarity: float = 0.5) -> Hit:
    return Hit(Chunk(f"doc-{source}", source, ordinal, text, 0, len(text)), similarity)


# --- parsing -------------------------------------------------------------------------------------


def test_csv_with_a_header_row() -> None:
    data = (
        b"Question , expected_source,expected_answer,notes\n"
        b"What are the rules?,Book.md,one owner at a time,x\n"
        b"\n"
        b",,,\n"
        b'"Where, exactly?",,"a ""quoted"" answer",\n'
        b"Who won in 1998?,,,\n"
    )
    assert parse_question_set(data, "set.csv") == [
        Question("What are the rules?", "Book.md", "one owner at a time"),
        Question("Where, exactly?", None, 'a "quoted" answer'),
        Question("Who won in 1998?"),
    ]


def test_csv_with_only_a_question_column_and_a_byte_order_mark() -> None:
    questions = parse_question_set("\ufeffquestion\nIs it late?\n".encode(), "q.CSV")
    assert questions == [Question("Is it late?")]
    assert not questions[0].answerable


def test_jsonl() -> None:
    lines = [
        {"question": "What are the rules?", "expected_source": "book.md"},
        {"question": "What is dropped?", "expected_answer": "the value", "id": 7},
        {"question": "Off topic?", "expected_source": "", "expected_answer": None},
    ]
    data = "\n".join(json.dumps(line) for line in lines[:2]) + "\n\n" + json.dumps(lines[2])
    questions = parse_question_set(data.encode(), "set.jsonl")
    assert questions == [
        Question("What are the rules?", "book.md"),
        Question("What is dropped?", None, "the value"),
        Question("Off topic?"),
    ]
    assert [q.answerable for q in questions] == [True, True, False]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("set.csv", b"", "set.csv: empty file"),
        ("set.jsonl", b"\n  \n", "set.jsonl: empty file"),
        ("set.csv", b"query,expected_source\nWhy?,a.md\n",
         "set.csv, line 1: no 'question' column in the header (found: query, expected_source)"),
        ("set.csv", b"question,expected_answer\nWhy?,x\n,only an answer\n",
         "set.csv, line 3: no question"),
        ("set.csv", b"question\n", "set.csv: no questions"),
        ("set.jsonl", b'{"question": "Why?"}\n{"question": "How?"\n',
         "set.jsonl, line 2: bad JSON (Expecting ',' delimiter, column 20)"),
        ("set.jsonl", b'{"question": "Why?"}\n\n["Why?"]\n',
         "set.jsonl, line 3: expected a JSON object with a 'question'"),
        ("set.jsonl", b'{"expected_source": "a.md"}\n', "set.jsonl, line 1: no question"),
        ("set.jsonl", b'{"question": "Why?", "expected_answer": 42}\n',
         "set.jsonl, line 1: 'expected_answer' must be text, not 42"),
        ("set.csv", b"question\n\xff\xfe\n", "set.csv: not UTF-8 text (byte 9)"),
        ("set.txt", b"question\nWhy?\n",
         "set.txt: unsupported file type '.txt' (use .csv or .jsonl)"),
    ],
)
def test_bad_input_names_the_file_line_and_cause(name: str, data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_question_set(data, name)
    assert str(error.value) == message


def test_too_many_questions_are_refused_at_the_first_one_over() -> None:
    rows = "".join(f"Question {n}?\n" for n in range(MAX_QUESTIONS + 5))
    with pytest.raises(ValueError, match=rf"big\.csv, line {MAX_QUESTIONS + 2}: more than "
                                         rf"{MAX_QUESTIONS} questions"):
        parse_question_set(f"question\n{rows}".encode(), "big.csv")


def test_the_sample_answers_are_in_the_readme() -> None:
    """The bundled sample stays true while the README changes."""
    questions = parse_question_set((REPO / "samples" / "questions.jsonl").read_bytes(),
                                   "questions.jsonl")
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split()).casefold()
    answerable = [q for q in questions if q.answerable]
    assert len(answerable) >= 10 and len(questions) - len(answerable) >= 5
    for question in answerable:
        assert question.expected_source == "README.md"
        assert " ".join(question.expected_answer.split()).casefold() in readme, question


# --- relevance -----------------------------------------------------------------------------------


def test_relevance_needs_the_file_and_the_text_when_both_are_given() -> None:
    text = "Each value in Rust has an owner.\nThere can only be ONE owner\n  at a time."
    both = Question("Rules?", "Book.MD", "there can only be one owner at a time")
    assert is_relevant(hit("book.md", text), both)
    assert is_relevant(hit("docs/book.md", text), both)  # a path in the set is its file name
    assert not is_relevant(hit("other.md", text), both)
    assert not is_relevant(hit("book.md", "Each value has an owner."), both)

    assert is_relevant(hit("book.md", "anything"), Question("Rules?", expected_source="BOOK.md"))
    assert is_relevant(hit("x.pdf", text), Question("Rules?", expected_answer="one  owner"))
    assert not is_relevant(hit("book.md", text), Question("Off topic?"))


# --- runs ----------------------------------------------------------------------------------------


class RankedRAG:
    """Hands run_question_set a fixed ranking per question, to check the metric wiring exactly."""

    def __init__(self, rankings: dict[str, list[Hit]], threshold: float) -> None:
        self.rankings = rankings
        self.settings = SimpleNamespace(similarity_threshold=threshold)

    def rank(self, question: str, depth: int) -> list[Hit]:
        return self.rankings[question][:depth]

    def gate(self, question: str, hits: list[Hit]) -> tuple[float | None, bool]:
        return threshold_gate(hits, self.settings.similarity_threshold)


def test_metrics_follow_the_rank_of_the_first_relevant_hit() -> None:
    noise = [hit("a.md", f"noise {n}", ordinal=n, similarity=0.3) for n in range(1, 30)]
    second = [noise[0], hit("a.md", "the answer", similarity=0.6), hit("a.md", "the answer", 99)]
    rankings = {"found second": second + noise[1:], "never found": noise,
                "off topic": [hit("a.md", "x", similarity=0.2)]}
    questions = [Question("found second", expected_answer="THE answer"),
                 Question("never found", expected_answer="not there"), Question("off topic")]
    calls = []
    result = run_question_set(RankedRAG(rankings, 0.4), questions,
                              lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    first, missed, off = result.results
    assert (first.found_at, first.best_similarity, first.refused) == (2, 0.6, False)
    assert len(missed.hits) == 20 and missed.found_at is None and missed.refused
    assert off.refused and off.found_at is None
    assert result.answerable == 2 and result.threshold == 0.4
    # One relevant item per question: the second rank counts once, the duplicate does not.
    assert result.scores["mrr@10"] == pytest.approx(0.5 / 2)
    assert result.scores["ndcg@10"] == pytest.approx((1 / math.log2(3)) / 2)
    assert result.recall_at[1] == 0.0 and result.recall_at[2] == result.recall_at[20] == 0.5
    assert sorted(result.recall_at) == list(range(1, 21))
    # Right: the off-topic one refused. Wrong: "never found" refused though answerable.
    assert result.refusal_accuracy == pytest.approx(2 / 3)


def test_a_set_with_no_answerable_question_has_no_retrieval_scores() -> None:
    result = run_question_set(RankedRAG({"q": [hit("a.md", "x", similarity=0.1)]}, 0.4),
                              [Question("q")])
    assert result.scores == {} and result.recall_at == {} and result.refusal_accuracy == 1.0


def test_a_run_against_a_real_index(tmp_path: Path, embedder, bench_data: Path) -> None:
    rag = RAG(Settings(data_dir=tmp_path), embedder=embedder)
    document = bench_data / "docs" / "markdown" / OWNERSHIP
    assert rag.ingest_one(OWNERSHIP, document.read_bytes()).status == "indexed"
    questions = [
        Question("What are the rules of ownership in Rust?", OWNERSHIP,
                 "There can only be one owner at a time."),
        Question("In which order does the stack store and remove values?",
                 expected_answer="last in, first out"),
        Question("How does Rust manage memory without a garbage collector?",
                 expected_source=OWNERSHIP.upper()),
        Question(COOKIES),
    ]
    result = run_question_set(rag, questions)
    rules, stack, memory, cookies = result.results
    assert all(r.found_at is not None and r.found_at <= 5 for r in (rules, stack, memory)), [
        (r.question.question, r.found_at) for r in result.results]
    assert memory.found_at == 1  # every chunk is from the expected file
    assert result.recall_at[5] == 1.0 and result.scores["recall@10"] == 1.0
    assert 0 < result.scores["mrr@10"] <= 1 and 0 < result.scores["ndcg@10"] <= 1
    assert cookies.refused and cookies.found_at is None
    assert cookies.best_similarity < rag.settings.similarity_threshold
    assert not rules.refused and not stack.refused
    assert all(len(r.hits) <= 20 for r in result.results)
