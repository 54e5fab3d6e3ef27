"""Citations on answers real models gave to the app's prompt (tests/data/model_outputs.json:
Qwen2.5-Coder-1.5B and SmolLM2-135M over TraceMonkey and the Rust book), plus the marker
forms the issue reports, written into those answers by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.citations import (
    MIN_SIMILARITY,
    Citations,
    attribute,
    highlight,
    link_markers,
    normalise,
)
from rag.generation import REFUSAL, failure_message
from rag.sentences import split_sentences

RECORDED = json.loads((Path(__file__).parent / "data" / "model_outputs.json").read_text("utf-8"))
QWEN, SMOL = "qwen2.5-coder-1.5b-instruct-q4_k_m", "smollm2-135m-instruct-q4_1"


def recorded(model: str, question: str) -> dict:
    return next(r for r in RECORDED if r["model"] == model and r["question"].startswith(question))


MACHINE = recorded(QWEN, "What machine")["answer"]
MOVE = recorded(QWEN, "Why is s1")["answer"]


def test_the_recording_holds_both_models_and_a_refusal() -> None:
    assert sum(r["model"] == QWEN for r in RECORDED) == 10
    assert sum(r["model"] == SMOL for r in RECORDED) == 10
    assert recorded(QWEN, "What is the capital")["answer"] == REFUSAL


@pytest.mark.parametrize("record", RECORDED, ids=lambda r: f"{r['model'][:4]}-{r['question'][:24]}")
def test_recorded_answers_pass_unchanged(record: dict) -> None:
    """Neither model wrote a marker in 20 answers, code fences cut off by the token limit
    included: normalising must not invent or damage anything."""
    assert normalise(record["answer"], len(record["passages"])) == Citations(record["answer"], ())


@pytest.mark.parametrize(
    ("raw", "text", "cited"),
    [
        ("running MacOS 10.5 [2].", "running MacOS 10.5 [2].", (2,)),
        ("running MacOS 10.5 [1, 2].", "running MacOS 10.5 [1][2].", (1, 2)),
        ("running MacOS 10.5 [2,1].", "running MacOS 10.5 [2][1].", (2, 1)),
        ("running MacOS 10.5 [1][3].", "running MacOS 10.5 [1][3].", (1, 3)),
        ("running MacOS 10.5 [1], [3].", "running MacOS 10.5 [1][3].", (1, 3)),
        ("running MacOS 10.5 [1-3].", "running MacOS 10.5 [1][2][3].", (1, 2, 3)),
        ("running MacOS 10.5 [1–2].", "running MacOS 10.5 [1][2].", (1, 2)),
        ("running MacOS 10.5 (Source 2).", "running MacOS 10.5 [2].", (2,)),
        ("running MacOS 10.5 (source 2).", "running MacOS 10.5 [2].", (2,)),
        ("running MacOS 10.5 (Sources 1 and 3).", "running MacOS 10.5 [1][3].", (1, 3)),
        ("running MacOS 10.5 (Source [2]).", "running MacOS 10.5 [2].", (2,)),
        ("running MacOS 10.5 ([1], [2]).", "running MacOS 10.5 [1][2].", (1, 2)),
        ("As Source [2] says, it ran MacOS.", "As [2] says, it ran MacOS.", (2,)),
        ("It ran open source [2].", "It ran open source [2].", (2,)),
        ("running MacOS 10.5 [Source 1].", "running MacOS 10.5 [1].", (1,)),
        ("running MacOS 10.5 【1】.", "running MacOS 10.5 [1].", (1,)),
        ("running MacOS 10.5 【2†source】.", "running MacOS 10.5 [2].", (2,)),
        # repeats within a group go, repeats across sentences stay
        ("Pro [1][1]. RAM [2, 2, 1]. OS [1].", "Pro [1]. RAM [2][1]. OS [1].", (1, 2)),
        # cited in order of first appearance
        ("OS [3]. Pro [1][3]. RAM [2].", "OS [3]. Pro [1][3]. RAM [2].", (3, 1, 2)),
    ],
)
def test_marker_forms_become_one_bracket_per_source(raw: str, text: str, cited: tuple) -> None:
    assert normalise(raw, 3) == Citations(text, cited)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        # the literal placeholder of the prompt, as the issue saw it, in a recorded answer
        ("According to [n], t" + MACHINE[1:], "According to the sources, t" + MACHINE[1:]),
        ("As stated in [N]: " + MOVE, "As stated in the sources: " + MOVE),
        (MACHINE[:-1] + " [n].", MACHINE),
        (MACHINE[:-1] + " [x] [N].", MACHINE),
        ("[n] " + MOVE, MOVE),
        ("Rust [n] considers it moved.", "Rust considers it moved."),
        ("Rust considers it moved ([n]).", "Rust considers it moved."),
        ("Rust considers it moved (Source n).", "Rust considers it moved."),
        # numbers that point at no source: removed, the valid part of a group kept
        ("Rust considers it moved [4].", "Rust considers it moved."),
        ("Rust considers it moved [0].", "Rust considers it moved."),
        ("Rust considers it moved [1, 4].", "Rust considers it moved [1]."),
        ("Rust considers it moved [2-9].", "Rust considers it moved [2][3]."),
        ("See [7] for details.", "See the sources for details."),
    ],
)
def test_markers_pointing_at_no_source_are_removed(raw: str, text: str) -> None:
    assert normalise(raw, 3).text == text


@pytest.mark.parametrize(
    "raw",
    [
        "The rules: (1) each value has an owner, (2) one owner at a time.",  # a list, not sources
        "Use `v[1]` to read the second element.",
        "Index with ``v[1]`` or `[n]`; `let a = [1, 2];` is an array.",
        "Like this:\n\n```rust\nlet a = [1, 2, 3];\nlet x = a[1];\n```\n\nThat reads a[1].",
        "Cut off by the token limit:\n```rust\nlet a = [1, 2, 3];",
        "The array v[1] and the map m[2] are indexed, not cited.",
        "Prices rose 10% (Fig. 3).",
    ],
)
def test_code_lists_and_indexing_are_left_alone(raw: str) -> None:
    assert normalise(raw, 3) == Citations(raw, ())


def test_a_recorded_cut_off_code_block_keeps_its_brackets() -> None:
    """SmolLM2's answer ends inside a ```rust fence; a "[1]" there is code, one before it prose."""
    answer = recorded(SMOL, "What does the clone")["answer"]
    raw = answer.replace("an array.", "an array [1].", 1) + "\nlet pair = [1, 2];"
    result = normalise(raw, 3)
    assert result.cited == (1,)
    assert result.text == raw


def test_the_failure_line_is_the_apps_and_stays_as_it_is() -> None:
    raw = MOVE + " [2]" + failure_message("HTTP 500 [1]")
    assert normalise(raw, 3) == Citations(MOVE + " [2]" + failure_message("HTTP 500 [1]"), (2,))


def test_no_sources_means_no_citation() -> None:
    assert normalise("Pro [1]. RAM [2].", 0) == Citations("Pro. RAM.", ())


def test_markers_become_links_outside_code() -> None:
    text = "Pro [1][2]. Use `v[1]`:\n```\nv[2]\n```\nRAM [3]."
    linked = link_markers(text, lambda n: f"#source-{n}")
    assert linked == (
        "Pro [[1]](#source-1)[[2]](#source-2). Use `v[1]`:\n```\nv[2]\n```\nRAM [[3]](#source-3)."
    )
    assert link_markers(linked, lambda n: "#again") == linked  # links are not linked twice


def test_sentences_keep_abbreviations_and_numbered_headings() -> None:
    text = (
        "7. Evaluation\nWe used e.g. SunSpider, i.e. 26 programs. See Fig. 3 and Smith et al.\n"
        "2009 for J. Doe's runs. It ran MacOS 10.5. Done!\n\n- one item\n- another item"
    )
    assert [text[a:b] for a, b in split_sentences(text)] == [
        "7. Evaluation\nWe used e.g. SunSpider, i.e. 26 programs.",
        "See Fig. 3 and Smith et al.\n2009 for J. Doe's runs.",
        "It ran MacOS 10.5.",
        "Done!",
        "- one item",
        "- another item",
    ]


@pytest.mark.parametrize("record", RECORDED[:10], ids=lambda r: r["question"][:24])
def test_sentence_spans_are_trimmed_ordered_and_cover_the_text(record: dict) -> None:
    for text in (*record["passages"], record["answer"]):
        spans = split_sentences(text)
        assert all(text[a:b] == text[a:b].strip() != "" for a, b in spans)
        assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:], strict=False))
        covered = "".join(text[a:b] for a, b in spans)
        assert "".join(covered.split()) == "".join(text.split())


# Which passage each recorded answer drew its facts from (read by eye), and the passage from
# the other document that the recording put beside them.
DRAWN_FROM = [
    (QWEN, "What machine", {1, 2}, 3),
    (QWEN, "What is a trace tree", {3}, 2),
    (QWEN, "How does TraceMonkey", {2}, 1),
    (QWEN, "What happens at a side exit", {1}, 3),
    (QWEN, "What are the ownership rules", {1}, 3),
    (QWEN, "What happens when a variable", {1, 3}, 2),
    (QWEN, "Why is s1", {2}, 1),
    (QWEN, "What does the clone", {1}, 3),
    (QWEN, "Which types implement", {1}, 2),
    (SMOL, "What machine", {1, 2}, 3),
    (SMOL, "What happens at a side exit", {2}, 3),
    (SMOL, "What happens when a variable", {1, 3}, 2),
]


@pytest.mark.parametrize(("model", "question", "sources", "unrelated"), DRAWN_FROM)
def test_attribution_finds_the_passage_an_answer_drew_from(
    embedder, model: str, question: str, sources: set[int], unrelated: int
) -> None:
    record = recorded(model, question)
    found = attribute(record["answer"], record["passages"], embedder, MIN_SIMILARITY)
    assert found and found[0] in sources
    assert sources <= set(found)
    assert unrelated not in found


@pytest.mark.parametrize("question", ["What is a trace tree", "What does the clone", "Why is s1"])
def test_a_hallucinated_answer_is_not_attributed_to_the_other_document(
    embedder, question: str
) -> None:
    record = recorded(SMOL, question)
    unrelated = next(u for m, q, _, u in DRAWN_FROM if m == QWEN and q == question)
    found = attribute(record["answer"], record["passages"], embedder, MIN_SIMILARITY)
    assert unrelated not in found


def test_refusals_off_topic_answers_and_failures_are_attributed_to_nothing(embedder) -> None:
    for model in (QWEN, SMOL):  # the refusal, and SmolLM2's "The capital of France is Paris."
        record = recorded(model, "What is the capital")
        assert attribute(record["answer"], record["passages"], embedder, 0.3) == ()
    passages = recorded(QWEN, "What machine")["passages"]
    assert attribute(failure_message("HTTP 500"), passages, embedder, 0.0) == ()
    assert attribute("Yes, it did.", passages, embedder, 0.0) == ()  # too short to mean anything
    with_failure = MACHINE + failure_message("the connection broke off")
    assert attribute(with_failure, passages, embedder, 0.5) == attribute(
        MACHINE, passages, embedder, 0.5
    )


def test_highlight_picks_the_sentence_with_the_answers_fact(embedder) -> None:
    passage = recorded(QWEN, "What machine")["passages"][0]
    (span,) = highlight(passage, MACHINE, embedder, top=1)
    assert passage[span[0] : span[1]] == (
        "All experiments were performed on a MacBook Pro with 2.2\n"
        "GHz Core 2 processor and 2 GB RAM running MacOS 10.5."
    )


def test_highlight_returns_the_best_sentences_in_document_order(embedder) -> None:
    passage = recorded(QWEN, "Why is s1")["passages"][1]
    spans = highlight(passage, MOVE, embedder)
    assert [passage[a:b] for a, b in spans] == [
        "To ensure memory safety, after the line `let s2 = s1;`, Rust considers `s1` as\n"
        "no longer valid.",
        "Therefore, Rust doesn’t need to free anything when `s1` goes\nout of scope.",
    ]
    assert highlight(passage, REFUSAL, embedder) == []


def test_highlight_leaves_a_passage_the_answer_did_not_use_unmarked(embedder) -> None:
    ownership = recorded(QWEN, "Why is s1")["passages"][1]
    assert highlight(ownership, MACHINE, embedder) == []
    assert highlight(ownership, MACHINE, embedder, min_similarity=-1.0), "only the cut-off hides it"
