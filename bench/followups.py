"""Follow-up questions: which way of searching a follow-up with its conversation finds the page
that answers it, and does the gate still refuse an off-topic follow-up?

Conversations (bench/followups.json) over the PDFs, the Rust book and the RFCs of
../shared/bench/data; per method it prints later-turn recall@5, off-topic refusal, false
refusals and the time each method adds, then the follow-up threshold sweep (chosen on the train
half of the conversations, reported on the test half), the single-turn control (samples/ over
the README), whole-document questions, and end to end with the default model on a fixed subset.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import BENCH_DATA, REPO

from rag.config import Settings
from rag.followups import FOLLOWUP_METHODS, Turn
from rag.generation import REFUSAL
from rag.local_models import default_gguf
from rag.pipeline import RAG
from rag.types import Hit

CONVERSATIONS = REPO / "bench" / "followups.json"
WHOLE_DOCUMENT = REPO / "bench" / "whole_document.json"
SAMPLES = REPO / "samples" / "questions.jsonl"
SWEEP = (0.0, 0.05, 0.10, 0.12, 0.15, 0.18, 0.20, 0.25, 0.30)


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def relevant(hit: Hit, turn: dict) -> bool:
    """The expected source, at the expected page or section (or, for a text with neither,
    holding the evidence)."""
    chunk = hit.chunk
    if chunk.source != turn["source"]:
        return False
    if turn.get("page") is not None:
        return chunk.page == turn["page"]
    if turn.get("section"):
        return chunk.heading == turn["section"]
    return flat(turn["evidence"]) in flat(chunk.text)


def share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.0%})" if whole else "-"


@dataclass
class Tally:
    found: int = 0
    answerable: int = 0
    false_refusals: int = 0
    off_topic: int = 0
    off_topic_refused: int = 0
    seconds: list[float] = field(default_factory=list)
    supports: list[tuple[bool, float | None, bool]] = field(default_factory=list)

    def row(self, name: str, base_s: float | None) -> str:
        mean = statistics.mean(self.seconds)
        added = "" if base_s is None else f"{(mean - base_s) * 1000:+.0f} ms"
        return (f"| {name} | {self.found / self.answerable:.3f} | "
                f"{share(self.false_refusals, self.answerable)} | "
                f"{share(self.off_topic_refused, self.off_topic)} | {mean * 1000:.0f} ms | {added} |")


def run_method(rag: RAG, conversations: list[dict], method: str,
               gate: bool = True) -> tuple[Tally, Tally]:
    """Later turns and first turns of every conversation, searched as the chat would; each
    earlier turn's sources are what this method retrieved for it (answers are not generated)."""
    rag.update_settings(rag.settings.model_copy(update={
        "followup_method": method,
        "followup_threshold": rag.settings.followup_threshold if gate else -1.0}))
    later, first = Tally(), Tally()
    for conversation in conversations:
        earlier: list[Turn] = []
        for index, turn in enumerate(conversation["turns"]):
            tally = first if index == 0 else later
            started = time.perf_counter()
            search = rag.plan_search(turn["question"], earlier)
            retrieval = rag.retrieve(search.text, latest=search.latest, carry=search.carry)
            tally.seconds.append(time.perf_counter() - started)
            hits = retrieval.hits[:5]
            refused = not hits
            if turn.get("off_topic"):
                tally.off_topic += 1
                tally.off_topic_refused += refused
            else:
                tally.answerable += 1
                tally.found += any(relevant(hit, turn) for hit in hits)
                tally.false_refusals += refused
            if index:
                tally.supports.append((bool(turn.get("off_topic")), retrieval.latest_support,
                                       retrieval.best_similarity is not None and
                                       retrieval.best_similarity >= retrieval.threshold))
            earlier.append(Turn(turn["question"], "",
                                tuple(hit.chunk.chunk_id for hit in retrieval.hits)))
    return later, first


def sweep(tally: Tally, label: str) -> None:
    """Off-topic refused vs answerable refused as the follow-up threshold moves."""
    print(f"\nfollow-up threshold sweep ({label}): off-topic refused / answerable refused")
    for cut in SWEEP:
        off = [(s is None or s < cut) or not passed for o, s, passed in tally.supports if o]
        on = [(s is None or s < cut) or not passed for o, s, passed in tally.supports if not o]
        print(f"  {cut:.2f}: {share(sum(off), len(off))}  {share(sum(on), len(on))}")


def readme_index(args: argparse.Namespace) -> RAG:
    """The README in an index of its own: it quotes this benchmark's off-topic questions, so
    beside the conversations' documents it would make them look answerable."""
    rag = RAG(Settings().model_copy(update={"data_dir": args.data_dir / "readme"}))
    readme = (REPO / "README.md").read_bytes()
    for info in rag.documents():  # an earlier version of the README
        if info.doc_id != hashlib.sha256(readme).hexdigest():
            rag.delete(info.doc_id)
    rag.ingest([("README.md", readme)])
    return rag


def single_turn(rag: RAG) -> str:
    """The samples/ questions about the README: a conversation's first turn is searched as it
    always was, so these must not change."""
    questions = [json.loads(line) for line in SAMPLES.read_text().splitlines() if line.strip()]
    answerable = [q for q in questions if q.get("expected_answer")]
    found = refused = 0
    for question in answerable:
        hits = rag.retrieve(question["question"]).hits[:5]
        refused += not hits
        found += any(flat(question["expected_answer"]) in flat(hit.chunk.text) for hit in hits)
    declined = sum(not rag.retrieve(q["question"]).hits for q in questions if q not in answerable)
    return (f"answerable: {found}/{len(answerable)} found in top 5, {refused} refused; "
            f"unanswerable: {declined}/{len(questions) - len(answerable)} refused")


def whole_document(rag: RAG, llm_questions: int) -> None:
    """Every question's passages; the first `llm_questions` also answered by the model."""
    questions = json.loads(WHOLE_DOCUMENT.read_text())
    documents = {info.source: info for info in rag.documents()}
    print("\n| question | document | passages | thirds covered | refused |")
    print("|---|---|---:|---:|---|")
    for number, question in enumerate(questions):
        info = documents[question["document"]]
        scope = [info.doc_id] if question.get("scoped") else []
        answer = rag.ask(question["question"], documents=scope)
        thirds = {min(2, hit.chunk.ordinal * 3 // info.chunks) for hit in answer.hits}
        text = "".join(answer.deltas) if number < llm_questions else ""
        refused = answer.refused or REFUSAL.lower()[:40] in text.lower()
        said = f"; model: {text[:70]!r}" if text else ""
        print(f"| {question['question']} | {info.source} | {answer.overview} | "
              f"{len(thirds)}/3 | {'yes' if refused else 'no'}{said} |", flush=True)


def end_to_end(rag: RAG, conversations: list[dict], methods: list[str]) -> None:
    """Each method answers every turn with the default model; the gold text in the answer."""
    for method in methods:
        rag.update_settings(rag.settings.model_copy(update={"followup_method": method}))
        contains = total = 0
        seconds = []
        for conversation in conversations:
            earlier: list[Turn] = []
            for index, turn in enumerate(conversation["turns"]):
                started = time.perf_counter()
                answer = rag.ask(turn["question"], earlier)
                text = "".join(answer.deltas)
                if index and not turn.get("off_topic"):
                    seconds.append(time.perf_counter() - started)
                    total += 1
                    contains += flat(turn["answer"]) in flat(text)
                earlier.append(Turn(turn["question"], text,
                                    tuple(hit.chunk.chunk_id for hit in answer.hits)))
        print(f"end to end, {method}: gold text in {contains}/{total} later answers; "
              f"median {statistics.median(seconds):.1f} s per answer", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "bench-followups")
    parser.add_argument("--no-llm", action="store_true",
                        help="retrieval only: skip condense and the end-to-end answers")
    parser.add_argument("--e2e-conversations", type=int, default=6,
                        help="conversations answered end to end per method (~20 s an answer)")
    parser.add_argument("--e2e-overviews", type=int, default=6,
                        help="whole-document questions answered by the model")
    args = parser.parse_args()

    spec = json.loads(CONVERSATIONS.read_text())
    settings = Settings().model_copy(update={
        "data_dir": args.data_dir, "llm_gguf": default_gguf(args.data_dir),
        "llm_max_tokens": 120})
    rag = RAG(settings)
    started = time.perf_counter()
    rag.ingest([(Path(path).name, (BENCH_DATA / path).read_bytes())
                for path in spec["documents"]])
    for info in rag.documents():  # runs before this one also indexed the README here
        if info.source == "README.md":
            rag.delete(info.doc_id)
    print(f"index: {len(rag.documents())} documents, {rag.store.count()} chunks "
          f"({time.perf_counter() - started:.0f} s)")
    conversations = spec["conversations"]
    train, test = conversations[::2], conversations[1::2]
    methods = [m for m in FOLLOWUP_METHODS if not (args.no_llm and m == "condense")]
    if "condense" in methods:
        rag.prepare_llm()
    rag.retrieve("warm up")

    print(f"\n{len(conversations)} conversations, threshold "
          f"{settings.similarity_threshold}, follow-up threshold {settings.followup_threshold}")
    print("\n| method | later-turn recall@5 | later turns falsely refused | off-topic refused "
          "| time per question | added |")
    print("|---|---:|---:|---:|---:|---:|")
    base = None
    for method in methods:
        later, first = run_method(rag, conversations, method)
        print(later.row(method, base), flush=True)
        if method == "latest":
            base = statistics.mean(later.seconds)
            print(first.row("(first turns, any method)", None))
    print(f"\nsingle-turn control (samples/ over the README): {single_turn(readme_index(args))}")

    default = Settings.model_fields["followup_method"].default
    for label, part in (("train half", train), ("test half", test)):
        later, _ = run_method(rag, part, default, gate=False)
        sweep(later, f"{default}, {label}")
    rag.update_settings(rag.settings.model_copy(update={
        "followup_threshold": settings.followup_threshold}))

    whole_document(rag, 0 if args.no_llm else args.e2e_overviews)
    if not args.no_llm:
        end_to_end(rag, conversations[: args.e2e_conversations], ["latest", default])


if __name__ == "__main__":
    main()
