"""Same-topic unanswerable questions end to end: SQuAD 2.0's impossible questions sit on the
very articles that are indexed, so no similarity threshold separates them (AUC ~0.64); the
embedded model's own "not in the sources" has to. Prints how many it declines, and how many
answerable ones it wrongly declines, on a fixed 60-question subset."""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from common import BENCH_DATA

from rag.config import Settings
from rag.generation import REFUSAL
from rag.local_models import default_gguf
from rag.pipeline import RAG

SQUAD = BENCH_DATA / "squad/squad2-dev-normans-rhine.json"
PER_KIND = 30


def articles() -> list[dict]:
    return json.loads(SQUAD.read_text(encoding="utf-8"))["data"]


def fixed_subset(data: list[dict], per_kind: int = PER_KIND) -> tuple[list[dict], list[dict]]:
    """Every n-th question of each kind, in file order: the same 30 + 30 on every run."""
    questions = [qa for article in data for paragraph in article["paragraphs"]
                 for qa in paragraph["qas"]]
    answerable = [qa for qa in questions if not qa["is_impossible"]]
    impossible = [qa for qa in questions if qa["is_impossible"]]
    return (answerable[:: len(answerable) // PER_KIND][:per_kind],
            impossible[:: len(impossible) // PER_KIND][:per_kind])


def declined(text: str) -> bool:
    """The refusal sentence, or the model's own words for it."""
    flat = text.lower().replace("\u2019", "'")
    return (REFUSAL.lower()[:40] in flat
            or re.search(r"(do not|don't|does not|doesn't) (contain|mention|provide|have|state)|"
                         r"not (mentioned|provided|stated|specified)|no information", flat)
            is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gguf", type=Path, help="another GGUF than the default embedded model")
    parser.add_argument("--max-tokens", type=int, default=96,
                        help="answer length cap: enough to see whether it declines")
    parser.add_argument("--json", type=Path, help="also write every answer here")
    parser.add_argument("--per-kind", type=int, default=PER_KIND,
                        help="a first part of the subset, for a quick look")
    args = parser.parse_args()

    data = articles()
    answerable, impossible = fixed_subset(data, args.per_kind)
    app_settings = Settings()
    gguf = args.gguf or default_gguf(app_settings.data_dir)
    rows = []
    with tempfile.TemporaryDirectory() as data_dir:
        settings = app_settings.model_copy(update={
            "data_dir": Path(data_dir), "llm_gguf": gguf, "llm_max_tokens": args.max_tokens})
        rag = RAG(settings)
        rag.ingest([(f"{article['title']}.txt",
                     "\n\n".join(p["context"] for p in article["paragraphs"]).encode())
                    for article in data])
        print(f"index: {len(data)} articles, {rag.store.count()} chunks "
              f"({settings.chunk_size}/{settings.chunk_overlap} {settings.chunk_strategy}); "
              f"threshold {settings.similarity_threshold}; model {gguf.name}")
        started = time.perf_counter()
        for kind, questions in (("answerable", answerable), ("impossible", impossible)):
            for qa in questions:
                answer = rag.ask(qa["question"])
                text = "".join(answer.deltas)
                gold = [a["text"] for a in qa["answers"]]
                rows.append({"id": qa["id"], "kind": kind, "question": qa["question"],
                             "answer": text, "gate_refused": answer.refused,
                             "declined": answer.refused or declined(text),
                             "gold_in_answer": any(g.lower() in text.lower() for g in gold)})
                print(f"{kind:10} {'DECLINED' if rows[-1]['declined'] else 'answered'}: "
                      f"{qa['question']} -> {text[:90]!r}", flush=True)
        elapsed = time.perf_counter() - started

    def count(kind: str, key: str) -> int:
        return sum(row[key] for row in rows if row["kind"] == kind)

    print(f"\nimpossible declined: {count('impossible', 'declined')}/{len(impossible)} "
          f"(by the threshold alone: {count('impossible', 'gate_refused')})")
    print(f"answerable wrongly declined: {count('answerable', 'declined')}/{len(answerable)}; "
          f"gold answer in the text: {count('answerable', 'gold_in_answer')}/{len(answerable)}")
    print(f"{len(rows)} questions in {elapsed:.0f} s ({elapsed / len(rows):.1f} s each)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
