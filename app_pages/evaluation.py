"""Run a question set against this index: does retrieval find the expected passage, and are the
questions the documents cannot answer refused at the current threshold?"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from rag.question_sets import (
    DEPTH,
    MAX_QUESTIONS,
    Question,
    QuestionResult,
    SetResult,
    is_relevant,
    parse_question_set,
    run_question_set,
    same_file,
)
from ui.charts import recall_chart, similarity_chart
from ui.indexing import show_result
from ui.sources import location, scores
from ui.state import get_rag

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "questions.jsonl"
README = ROOT / "README.md"
UPLOAD, BUNDLED = "Upload a file", "The sample (questions about this app's README)"


def expected(question: Question) -> str:
    if not question.answerable:
        return "nothing: should be refused"
    answer = f'"{question.expected_answer}"' if question.expected_answer else ""
    return " · ".join(part for part in (question.expected_source, answer) if part)


def outcome(result: QuestionResult) -> str:
    if not result.question.answerable:
        return "refused, as it should be" if result.refused else "answered, should be refused"
    found = f"found at rank {result.found_at}" if result.found_at else f"not in the top {DEPTH}"
    return f"{found}, but refused" if result.refused else found


def show_hits(result: QuestionResult, top_k: int) -> None:
    """The top k hits, and down to the first relevant one; passages as plain text (st.text)."""
    shown = max(top_k, result.found_at or 0)
    for rank, hit in enumerate(result.hits[:shown], start=1):
        mark = " — **relevant**" if is_relevant(hit, result.question) else ""
        st.caption(f"[{rank}] {hit.chunk.source} — {location(hit)} — {scores(hit)}{mark}")
        st.text(hit.chunk.text)


def show_results(name: str, result: SetResult) -> None:
    threshold, top_k = engine.settings.similarity_threshold, engine.settings.top_k
    st.subheader(f"Results for {name}")
    answerable = result.answerable
    st.caption(f"{len(result.results)} questions: {answerable} answerable, "
               f"{len(result.results) - answerable} that should be refused. Retrieval metrics "
               "count answerable questions only.")
    if result.threshold != threshold:
        st.info(f"Refusals were judged at threshold {result.threshold:.2f}; it is now "
                f"{threshold:.2f}. Run again to judge them at the new one.")

    def score(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    recall, ndcg, mrr, refusals = st.columns(4)
    recall.metric("Recall@5", score(result.recall_at.get(5)), border=True,
                  help="Share of answerable questions with a relevant passage in the top 5.")
    ndcg.metric("nDCG@10", score(result.scores.get("ndcg@10")), border=True,
                help="1 when the first relevant passage ranks first, less the lower it ranks, "
                     "0 below rank 10 (trec_eval).")
    mrr.metric("MRR@10", score(result.scores.get("mrr@10")), border=True,
               help="Mean of 1 / rank of the first relevant passage, 0 below rank 10.")
    refusals.metric("Refusal accuracy", f"{result.refusal_accuracy:.0%}", border=True,
                    help="Questions the app would rightly answer or refuse: unanswerable ones "
                         f"refused, answerable ones not, at threshold {result.threshold:.2f}.")

    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Best similarity per question**")
        st.altair_chart(similarity_chart(result, threshold), width="stretch")
    with right:
        st.markdown("**Recall against k**")
        if result.recall_at:
            st.altair_chart(recall_chart(result, top_k), width="stretch")
        else:
            st.caption("No answerable question in this set.")

    table = pd.DataFrame([{
        "question": r.question.question,
        "found at rank": r.found_at,
        "best similarity": r.best_similarity,
        "refused": r.refused,
        "expected": expected(r.question),
    } for r in result.results]).astype({"found at rank": "Int64", "best similarity": "Float64"})
    columns = {
        "question": st.column_config.TextColumn(width=320),
        "found at rank": st.column_config.NumberColumn(
            help=f"Rank of the first relevant passage; empty: not in the top {DEPTH}"),
        "best similarity": st.column_config.NumberColumn(format="%.3f"),
        "refused": st.column_config.CheckboxColumn(
            help=f"Best similarity below the threshold {result.threshold:.2f}"),
    }
    rows = min(len(table), 20)  # all of a small set without scrolling
    st.dataframe(table, hide_index=True, height=(rows + 1) * 35 + 3, placeholder="—",
                 column_config=columns)
    st.caption("Top hits per question")
    for number, r in enumerate(result.results, start=1):
        with st.expander(f"{number}. {r.question.question} — {outcome(r)}"):
            show_hits(r, top_k)


engine = get_rag()
st.title("Evaluation")
st.caption(
    "Run your own questions against your own index. A CSV (with a header row) or JSONL file "
    "gives per question: `question`, and `expected_source` (the file the answer is in) and/or "
    "`expected_answer` (text a relevant passage contains). A question with neither is one the "
    f"documents cannot answer: the app should refuse it. Up to {MAX_QUESTIONS} questions."
)
documents = engine.documents()
empty_index = st.empty()
if not documents:
    with empty_index.container():
        st.info("Nothing is indexed yet: add files on the Documents page (or index this app's "
                "README below to try the sample).")
        st.page_link("app_pages/documents.py", label="Go to Documents",
                     icon=":material/description:")

choice = st.radio("Question set", [UPLOAD, BUNDLED], horizontal=True, key="question-set")
questions: list[Question] = []
name = ""
if choice == UPLOAD:
    upload = st.file_uploader("Question set", type=["csv", "jsonl"], key="question-file",
                              label_visibility="collapsed")
    if upload is not None:
        try:
            questions, name = parse_question_set(upload.getvalue(), upload.name), upload.name
        except ValueError as error:
            st.error(str(error))
else:
    questions, name = parse_question_set(SAMPLE.read_bytes(), SAMPLE.name), "the sample"
    if not any(same_file(info.source, README.name) for info in documents):
        readme_area = st.empty()
        with readme_area.container():
            st.info("The sample asks about this app's README.md, which is not indexed.")
            index_readme = st.button("Index README.md", icon=":material/upload_file:",
                                     key="index-readme")
        if index_readme:
            readme_area.empty()
            empty_index.empty()
            show_result(engine.ingest_one(README.name, README.read_bytes()))
            documents = engine.documents()

if questions:
    missing = sorted({q.expected_source for q in questions if q.expected_source and not any(
        same_file(info.source, q.expected_source) for info in documents)})
    unanswerable = sum(not q.answerable for q in questions)
    st.caption(f"{len(questions)} questions from {name}, {unanswerable} of them should be "
               "refused.")
    if missing and choice == UPLOAD:  # the sample offers to index its README above
        st.warning("Expected in files that are not indexed: " + ", ".join(missing))

if st.button("Run", type="primary", icon=":material/play_arrow:", key="run-evaluation",
             disabled=not questions or not documents):
    progress = st.progress(0.0, text=f"Ranking {len(questions)} questions…")

    def advance(done: int, total: int) -> None:
        progress.progress(done / total, text=f"{done} of {total} questions ranked")

    st.session_state["evaluation"] = (name, run_question_set(engine, questions, advance))
    progress.empty()

if saved := st.session_state.get("evaluation"):
    show_results(*saved)
