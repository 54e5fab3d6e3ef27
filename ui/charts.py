"""The Evaluation page's plots, built with altair so Streamlit draws them with its theme."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

from rag.question_sets import SetResult

ANSWERABLE, UNANSWERABLE = "answerable", "should be refused"
HEIGHT = 260  # with the axes: Streamlit fits the whole chart into it
RULE_COLOR = "#d62728"


def _rule(field: str, value: float, label: str, *, x_type: str, label_y: Any) -> alt.LayerChart:
    """A dashed vertical line at `value` on the chart's own x field, its label at `label_y`."""
    base = alt.Chart(pd.DataFrame({field: [value]}))
    line = base.mark_rule(color=RULE_COLOR, strokeDash=[5, 4], strokeWidth=2).encode(
        x=f"{field}:{x_type}")
    text = base.mark_text(align="left", baseline="middle", dx=5, color=RULE_COLOR).encode(
        x=f"{field}:{x_type}", y=label_y, text=alt.value(label))
    return line + text


def similarity_chart(result: SetResult, threshold: float) -> alt.LayerChart:
    """One tick per question at its best similarity: answerable questions should sit right of
    the threshold line, the others left of it."""
    data = pd.DataFrame(
        [{"question": r.question.question,
          "kind": ANSWERABLE if r.question.answerable else UNANSWERABLE,
          "best similarity": r.best_similarity}
         for r in result.results if r.best_similarity is not None],
        columns=["question", "kind", "best similarity"],
    )
    low = min([0.0, threshold, *data["best similarity"]])
    kinds = [ANSWERABLE, UNANSWERABLE]
    ticks = alt.Chart(data).mark_tick(thickness=3, size=30, opacity=0.75).encode(
        x=alt.X("best similarity:Q", scale=alt.Scale(domain=[low, 1.0]),
                title="best cosine similarity of the question"),
        y=alt.Y("kind:N", title=None, sort=kinds),
        color=alt.Color("kind:N", legend=None,
                        scale=alt.Scale(domain=kinds, range=["#1f77b4", "#ff7f0e"])),
        tooltip=["question", alt.Tooltip("best similarity:Q", format=".3f"), "kind"],
    )
    rule = _rule("best similarity", threshold, f"threshold {threshold:.2f}", x_type="Q",
                 label_y=alt.value(6))
    return (ticks + rule).properties(height=HEIGHT)


def recall_chart(result: SetResult, top_k: int) -> alt.LayerChart:
    """Recall against k; the line at top k is how many passages the chat hands the model."""
    data = pd.DataFrame({"k": list(result.recall_at), "recall": list(result.recall_at.values())})
    line = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("k:O", axis=alt.Axis(labelAngle=0), title="k (passages looked at)"),
        y=alt.Y("recall:Q", scale=alt.Scale(domain=[0, 1]), title="recall@k"),
        tooltip=["k", alt.Tooltip("recall:Q", format=".0%")],
    )
    if top_k in result.recall_at:  # its label low: the curve runs high
        line += _rule("k", top_k, f"top k = {top_k}", x_type="O", label_y=alt.datum(0.08))
    return line.properties(height=HEIGHT)
