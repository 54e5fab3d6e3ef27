"""Similarity-threshold calibration for the default embedder, on the gate's own score:
`RAG.retrieve(question).best_similarity` (best dense cosine among the candidates).

(a) off-topic: SciFact TEST queries (answerable, their abstracts are indexed) vs SQuAD 2.0 dev
    questions (Normans/Rhine file + sample500, duplicates dropped: nothing about them is
    indexed), on the full SciFact index (--scifact-index, opened from a copy so the original is
    never written), or, with --build-subset, on the test queries' relevant abstracts + 1,500
    distractors indexed here.
(b) same-topic: Normans and Rhine indexed as one document per article (paragraphs joined by
    blank lines); answerable = their answerable questions; unanswerable = their impossible
    questions ("impossible, same article") and sample500 questions from other articles
    ("other articles", not indexed; answerable or not there, nothing here answers them).

Per threshold 0.00..0.90: share of unanswerable refused and share of answerable refused (false
refusals). Balanced accuracy = (unanswerable refused + answerable answered) / 2. The default is
chosen on (a): among the thresholds of the 0.05 grid that meet both targets (>= 90% off-topic
refused, <= 5% SciFact questions refused), the one with the widest margin to the nearer target;
the maximum of balanced accuracy is printed beside it (when no threshold meets both, it is the
choice).
Scores are cached in --scores, so the table and the plot can be redrawn without the index.

    nice -n 5 .venv/bin/python bench/threshold.py --sets a b
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from calibration import auc, best, curve, widest_margin
from common import BENCH_DATA, REPO, write_results

from rag.config import Settings
from rag.embeddings import Embedder
from rag.evaluation import as_file, index, load_beir
from rag.pipeline import RAG

SQUAD = BENCH_DATA / "squad"
SEED_THRESHOLD = 0.7
PER_KIND = 30


def squad_questions() -> tuple[list[dict], dict[str, str], dict[str, str], dict[str, str]]:
    """Normans/Rhine articles with their questions; sample500 questions of other articles."""
    data = json.loads((SQUAD / "squad2-dev-normans-rhine.json").read_text(encoding="utf-8"))["data"]
    in_file = {qa["id"] for a in data for p in a["paragraphs"] for qa in p["qas"]}
    sample = json.loads((SQUAD / "sample500" / "queries.json").read_text(encoding="utf-8"))
    others = {q["id"]: q["question"] for q in sample["queries"] if q["id"] not in in_file}
    answerable = {qa["id"]: qa["question"] for a in data for p in a["paragraphs"]
                  for qa in p["qas"] if not qa["is_impossible"]}
    impossible = {qa["id"]: qa["question"] for a in data for p in a["paragraphs"]
                  for qa in p["qas"] if qa["is_impossible"]}
    return data, answerable, impossible, others


def abstain_subset(data: list[dict]) -> dict[str, list[str]]:
    """Every n-th question of each kind in file order (n = count // 30), first 30: the same
    selection as bench/abstain.py's fixed_subset."""
    questions = [qa for a in data for p in a["paragraphs"] for qa in p["qas"]]
    answerable = [qa["id"] for qa in questions if not qa["is_impossible"]]
    impossible = [qa["id"] for qa in questions if qa["is_impossible"]]
    return {"answerable": answerable[:: len(answerable) // PER_KIND][:PER_KIND],
            "impossible": impossible[:: len(impossible) // PER_KIND][:PER_KIND]}


def gate_scores(rag: RAG, questions: dict[str, str], label: str) -> dict[str, float | None]:
    started = time.perf_counter()
    scores = {qid: rag.retrieve(text).best_similarity for qid, text in questions.items()}
    print(f"  {label}: {len(scores)} questions in {time.perf_counter() - started:.0f} s", flush=True)
    return scores


def open_scifact(args, embedder: Embedder) -> tuple[RAG, str]:
    if args.build_subset:
        test = load_beir(BENCH_DATA / "scifact", "test")
        relevant = {doc for docs in test.qrels.values() for doc in docs}
        others = [doc for doc in test.corpus if doc not in relevant][: args.distractors]
        keep = relevant | set(others)
        bench = type(test)({d: t for d, t in test.corpus.items() if d in keep}, test.queries,
                           test.qrels)
        rag = RAG(Settings(data_dir=args.work / "scifact-subset"), embedder=embedder)
        started = time.perf_counter()
        index(rag, bench)
        print(f"  indexed {len(bench.corpus)} abstracts in {time.perf_counter() - started:.0f} s",
              flush=True)
        return rag, f"SciFact subset built here: {len(relevant)} relevant + {len(others)} distractors"
    source = args.scifact_index
    deadline = time.time() + args.wait
    while not (source / "READY").exists():
        if time.time() > deadline:
            raise SystemExit(f"{source}/READY did not appear within {args.wait} s; use --build-subset")
        time.sleep(10)
    copy = args.work / "scifact-full-copy"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(source, copy)  # the original stays untouched by Chroma or a BM25 rebuild
    rag = RAG(Settings(data_dir=copy), embedder=embedder)
    return rag, f"full SciFact index ({source}, {rag.store.count()} chunks)"


def run_a(args, embedder: Embedder, scores: dict) -> None:
    rag, where = open_scifact(args, embedder)
    print(f"(a) on {where}", flush=True)
    test = load_beir(BENCH_DATA / "scifact", "test")
    _, answerable, impossible, others = squad_questions()
    offtopic = answerable | impossible | others
    scores["a"] = {
        "index": where,
        "chunk_settings": {k: getattr(rag.settings, k)
                           for k in ("chunk_size", "chunk_overlap", "chunk_strategy")},
        "answerable": gate_scores(rag, test.queries, "SciFact test queries"),
        "offtopic": gate_scores(rag, offtopic, "SQuAD questions"),
    }


def run_b(args, embedder: Embedder, scores: dict) -> None:
    data, answerable, impossible, others = squad_questions()
    rag = RAG(Settings(data_dir=args.work / "squad-articles"), embedder=embedder)
    for article in data:
        text = "\n\n".join(p["context"] for p in article["paragraphs"])
        rag.ingest_one(*as_file(article["title"].lower(), article["title"], text))
    rag.sync_lexical()
    print(f"(b) Normans + Rhine: {rag.store.count()} chunks", flush=True)
    scores["b"] = {
        "chunk_settings": {k: getattr(rag.settings, k)
                           for k in ("chunk_size", "chunk_overlap", "chunk_strategy")},
        "answerable": gate_scores(rag, answerable, "answerable"),
        "impossible": gate_scores(rag, impossible, "impossible, same article"),
        "others": gate_scores(rag, others, "other articles"),
    }


def values(d: dict) -> list[float | None]:
    return list(d.values())


def report(scores: dict) -> tuple[str, float | None]:
    lines, chosen = [], None
    if "a" in scores:
        a = scores["a"]
        pa = curve(values(a["answerable"]), values(a["offtopic"]))
        top = best(pa)
        chosen_point = widest_margin(pa) or top
        chosen = chosen_point.threshold
        lines += [
            f"## (a) off-topic: {len(a['answerable'])} SciFact test queries (answerable) vs "
            f"{len(a['offtopic'])} SQuAD questions (off-topic)",
            "",
            f"Index: {a['index']}; chunking {a['chunk_settings']}.",
            f"ROC AUC of best similarity: {auc(values(a['answerable']), values(a['offtopic'])):.3f}. "
            f"Best balanced accuracy: {top.balanced_accuracy:.3f} at {top.threshold:.2f} "
            f"(off-topic refused {top.refused_unanswerable:.1%}, false refusals "
            f"{top.false_refusal:.1%}).",
            f"Chosen default (widest margin to the targets >= 90% refused, <= 5% false refusals): "
            f"{chosen:.2f}: off-topic refused {chosen_point.refused_unanswerable:.1%}, false "
            f"refusals {chosen_point.false_refusal:.1%}, balanced accuracy "
            f"{chosen_point.balanced_accuracy:.3f}.",
            "",
            "| threshold | off-topic refused | false refusals (SciFact) | balanced accuracy |",
            "|---:|---:|---:|---:|",
        ]
        lines += [f"| {p.threshold:.2f} | {p.refused_unanswerable:.1%} | {p.false_refusal:.1%} | "
                  f"{p.balanced_accuracy:.3f} |" for p in pa]
        lines.append("")
    if "b" in scores:
        b = scores["b"]
        pos = values(b["answerable"])
        pi = curve(pos, values(b["impossible"]))
        po = curve(pos, values(b["others"]))
        pall = curve(pos, values(b["impossible"]) + values(b["others"]))
        bi, bo, ball = best(pi), best(po), best(pall)
        lines += [
            f"## (b) same-topic: Normans + Rhine indexed; {len(pos)} answerable, "
            f"{len(b['impossible'])} impossible (same article), {len(b['others'])} from other "
            "articles",
            "",
            f"Chunking {b['chunk_settings']}.",
            f"ROC AUC answerable vs impossible (same article): "
            f"{auc(pos, values(b['impossible'])):.3f}; vs other articles: "
            f"{auc(pos, values(b['others'])):.3f}; vs both: "
            f"{auc(pos, values(b['impossible']) + values(b['others'])):.3f}.",
            f"Best balanced accuracy: impossible {bi.balanced_accuracy:.3f} at {bi.threshold:.2f}; "
            f"other articles {bo.balanced_accuracy:.3f} at {bo.threshold:.2f}; both "
            f"{ball.balanced_accuracy:.3f} at {ball.threshold:.2f}.",
            "",
            "| threshold | impossible refused | other articles refused | false refusals | "
            "bal. acc. (impossible) | bal. acc. (other) |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [f"| {i.threshold:.2f} | {i.refused_unanswerable:.1%} | "
                  f"{o.refused_unanswerable:.1%} | {i.false_refusal:.1%} | "
                  f"{i.balanced_accuracy:.3f} | {o.balanced_accuracy:.3f} |"
                  for i, o in zip(pi, po, strict=True)]
        lines.append("")
    return "\n".join(lines), chosen


def plot(scores: dict, chosen: float | None, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fine = [round(0.01 * i, 2) for i in range(91)]
    fig, ax = plt.subplots(figsize=(7, 5), dpi=100)
    if "a" in scores:
        pa = curve(values(scores["a"]["answerable"]), values(scores["a"]["offtopic"]), fine)
        ax.plot(fine, [p.refused_unanswerable for p in pa], color="tab:green",
                label="(a) off-topic SQuAD refused")
        ax.plot(fine, [p.false_refusal for p in pa], color="tab:red",
                label="(a) SciFact questions refused (false)")
    if "b" in scores:
        b = scores["b"]
        pi = curve(values(b["answerable"]), values(b["impossible"]), fine)
        po = curve(values(b["answerable"]), values(b["others"]), fine)
        ax.plot(fine, [p.refused_unanswerable for p in pi], "--", color="tab:olive",
                label="(b) impossible, same article refused")
        ax.plot(fine, [p.refused_unanswerable for p in po], "--", color="tab:cyan",
                label="(b) other articles refused")
        ax.plot(fine, [p.false_refusal for p in pi], "--", color="tab:orange",
                label="(b) answerable refused (false)")
    if chosen is not None:
        ax.axvline(chosen, color="black", linewidth=1)
        ax.text(chosen + 0.01, 0.5, f"default {chosen:.2f}", rotation=90, va="center")
    ax.axvline(SEED_THRESHOLD, color="grey", linestyle=":", linewidth=1)
    ax.text(SEED_THRESHOLD + 0.01, 0.5, "seed 0.70", rotation=90, va="center", color="grey")
    ax.set_xlabel("similarity threshold (best dense cosine)")
    ax.set_ylabel("share of questions refused")
    ax.set_xlim(0, 0.9)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax.set_title("Refusals vs threshold, all-MiniLM-L6-v2", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="*", default=["a", "b"], choices=["a", "b"],
                        help="sets to (re)compute; cached scores are used for the others")
    parser.add_argument("--scifact-index", type=Path, default=Path("/tmp/bench/scifact-full"))
    parser.add_argument("--wait", type=int, default=0, help="seconds to wait for its READY file")
    parser.add_argument("--build-subset", action="store_true",
                        help="(a) on test-relevant abstracts + --distractors, indexed here")
    parser.add_argument("--distractors", type=int, default=1500)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench/threshold"))
    parser.add_argument("--scores", type=Path, default=Path("/tmp/bench/threshold/scores.json"))
    parser.add_argument("--threads", type=int, default=1, help=(
        "torch threads; on 2 cores shared with other jobs 1 thread encoded a query in 47 ms, "
        "2 threads in 463 ms"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "threshold.md")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "images" / "threshold.png")
    args = parser.parse_args()
    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)

    data, *_ = squad_questions()
    subset_file = REPO / "bench" / "results" / "abstain_subset.json"
    subset_file.parent.mkdir(parents=True, exist_ok=True)
    subset_file.write_text(json.dumps(abstain_subset(data), indent=1) + "\n", encoding="utf-8")

    scores = json.loads(args.scores.read_text()) if args.scores.exists() else {}
    if args.sets:
        settings = Settings()
        embedder = Embedder(settings.embedding_model, settings.embedding_batch_size)
        torch.set_num_threads(args.threads)  # after the Embedder, which sets the core count
        for name in args.sets:
            (run_a if name == "a" else run_b)(args, embedder, scores)
            args.scores.write_text(json.dumps(scores))
    text, chosen = report(scores)
    wall = time.perf_counter() - started
    print(text)
    print(f"wall time {wall:.0f} s")
    write_results(
        args.out,
        "# Similarity threshold calibration (all-MiniLM-L6-v2)\n\n"
        "`nice -n 5 .venv/bin/python bench/threshold.py`. Score: `RAG.retrieve(q).best_similarity`, "
        "the best dense cosine among the candidates; a question is refused when it is below the "
        "threshold. Balanced accuracy = (share of unanswerable refused + share of answerable "
        "answered) / 2.\n\n" + text, "## Runs and decision")
    if scores:
        plot(scores, chosen, args.png)
        print(f"{args.png}: {args.png.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
