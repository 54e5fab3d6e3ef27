"""A user's own question set run against their own index: did retrieval find the expected passage,
and was an off-topic question refused? Metrics come from pytrec_eval (trec_eval's code)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath

import pytrec_eval

from rag.evaluation import Qrels, Run, score_run
from rag.pipeline import RAG
from rag.types import Hit

MAX_QUESTIONS = 500  # one query embedding each: minutes at most, even on a busy 2-core CPU
DEPTH = 20  # hits ranked and judged per question; recall is reported for k = 1..DEPTH
FIELDS = ("question", "expected_source", "expected_answer")
TARGET = "target"  # the run's name for a question's first relevant hit: its only relevant item


@dataclass(frozen=True)
class Question:
    question: str
    expected_source: str | None = None  # file name the answer is in
    expected_answer: str | None = None  # text a relevant passage contains

    @property
    def answerable(self) -> bool:
        """A question with no expectation is one the app should refuse."""
        return self.expected_source is not None or self.expected_answer is not None


@dataclass(frozen=True)
class QuestionResult:
    question: Question
    hits: tuple[Hit, ...]  # the ranking to DEPTH, best first
    found_at: int | None  # 1-based rank of the first relevant hit
    best_similarity: float | None  # what the threshold judges, as in the chat
    refused: bool

    @property
    def refusal_correct(self) -> bool:
        return self.refused != self.question.answerable


@dataclass(frozen=True)
class SetResult:
    results: tuple[QuestionResult, ...]
    threshold: float  # the similarity threshold the refusals were judged with
    scores: dict[str, float]  # score_run's ndcg@10, recall@10, mrr@10… over answerable questions
    recall_at: dict[int, float]  # k -> share of answerable questions with a relevant hit in top k
    refusal_accuracy: float  # over every question: refused exactly when unanswerable

    @property
    def answerable(self) -> int:
        return sum(result.question.answerable for result in self.results)


def parse_question_set(data: bytes, name: str) -> list[Question]:
    """CSV with a header row or JSONL, chosen by the file's extension. Every error names the file
    and, where there is one, the line, so a user can fix the file."""
    extension = PurePath(name).suffix.lower()
    if extension not in (".csv", ".jsonl"):
        raise ValueError(f"{name}: unsupported file type '{extension}' (use .csv or .jsonl)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{name}: not UTF-8 text (byte {error.start})") from None
    if not text.strip():
        raise ValueError(f"{name}: empty file")
    rows = _csv_rows(text, name) if extension == ".csv" else _jsonl_rows(text, name)
    questions = []
    for line, row in rows:
        if len(questions) == MAX_QUESTIONS:
            raise ValueError(f"{name}, line {line}: more than {MAX_QUESTIONS} questions; "
                             "split the set into smaller files")
        questions.append(_question(row, name, line))
    if not questions:
        raise ValueError(f"{name}: no questions")
    return questions


def _csv_rows(text: str, name: str) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [column.strip().lower() for column in reader.fieldnames or []]
    except csv.Error as error:
        raise ValueError(f"{name}, line 1: not CSV ({error})") from None
    if "question" not in header:
        raise ValueError(f"{name}, line 1: no 'question' column in the header "
                         f"(found: {', '.join(header) or 'nothing'})")
    reader.fieldnames = header
    try:
        for row in reader:
            if any((value or "").strip() for value in row.values() if isinstance(value, str)):
                yield reader.line_num, row
    except csv.Error as error:
        raise ValueError(f"{name}, line {reader.line_num}: not CSV ({error})") from None


def _jsonl_rows(text: str, name: str) -> Iterator[tuple[int, dict]]:
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            row = json.loads(content)
        except json.JSONDecodeError as error:
            raise ValueError(f"{name}, line {line}: bad JSON ({error.msg}, column {error.colno})"
                             ) from None
        if not isinstance(row, dict):
            raise ValueError(f"{name}, line {line}: expected a JSON object with a 'question'")
        yield line, row


def _question(row: dict, name: str, line: int) -> Question:
    values = {}
    for field in FIELDS:
        value = row.get(field)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name}, line {line}: '{field}' must be text, not {value!r}")
        values[field] = (value or "").strip() or None
    if values["question"] is None:
        raise ValueError(f"{name}, line {line}: no question")
    return Question(**values)


def _flat(text: str) -> str:
    return " ".join(text.split()).casefold()


def same_file(source: str, expected: str) -> bool:
    """File names compared without folders and case: "docs/README.md" is "readme.md"."""
    def name(path: str) -> str:
        return PurePosixPath(path.replace("\\", "/")).name.casefold()

    return name(source) == name(expected)


def is_relevant(hit: Hit, question: Question) -> bool:
    """From the expected file (name, any case) and containing the expected text (any case and
    spacing); a question with neither has no relevant passage."""
    if not question.answerable:
        return False
    if question.expected_source and not same_file(hit.chunk.source, question.expected_source):
        return False
    return not question.expected_answer or _flat(question.expected_answer) in _flat(hit.chunk.text)


def run_question_set(rag: RAG, questions: Sequence[Question],
                     progress: Callable[[int, int], None] | None = None) -> SetResult:
    """Rank each question to DEPTH without the threshold's gate, then judge the ranking and, like
    the chat, whether the best similarity reaches the threshold."""
    results = []
    for done, question in enumerate(questions, start=1):
        ranked = rag.rank(question.question, depth=DEPTH)
        best, refused = rag.gate(question.question, ranked)  # before the cut, as the chat
        hits = tuple(ranked[:DEPTH])
        found = next((rank for rank, hit in enumerate(hits, start=1)
                      if is_relevant(hit, question)), None)
        results.append(QuestionResult(question, hits, found, best, refused))
        if progress is not None:
            progress(done, len(questions))
    qrels, run = _qrels_and_run(results)
    return SetResult(
        results=tuple(results),
        threshold=rag.settings.similarity_threshold,
        scores=score_run(qrels, run) if qrels else {},
        recall_at=_recall_at(qrels, run),
        refusal_accuracy=sum(r.refusal_correct for r in results) / len(results) if results else 0.0,
    )


def _qrels_and_run(results: Sequence[QuestionResult]) -> tuple[Qrels, Run]:
    """Answerable questions only. The first relevant hit is the one relevant item, so recall@k is
    'found in the top k'; scores are ranks turned round, so trec_eval sees the app's order."""
    qrels: Qrels = {}
    run: Run = {}
    for number, result in enumerate(results):
        if not result.question.answerable:
            continue
        query_id = f"q{number}"
        qrels[query_id] = {TARGET: 1}
        last = float(len(result.hits) + 1)
        run[query_id] = {TARGET if rank == result.found_at else hit.chunk.chunk_id: last - rank
                         for rank, hit in enumerate(result.hits, start=1)}
    return qrels, run


def _recall_at(qrels: Qrels, run: Run) -> dict[int, float]:
    """trec_eval's success@k: 1 when a relevant item is in the top k (with one item, recall@k)."""
    if not qrels:
        return {}
    ks = range(1, DEPTH + 1)
    measure = "success." + ",".join(str(k) for k in ks)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {measure}).evaluate(
        {q: docs for q, docs in run.items() if docs})  # it skips empty rankings: they score 0
    return {k: sum(per_query.get(q, {}).get(f"success_{k}", 0.0) for q in qrels) / len(qrels)
            for k in ks}
