"""Answer quality against prompt size, end to end with the default embedded model: how many
prompt tokens an answer needs, and how the answer step can decline what the sources don't say.

Sets: the 30 answerable and 30 unanswerable ("impossible") SQuAD 2.0 questions of
bench/results/abstain_subset.json over their two articles, and the answerable questions of
bench/answers_questions.json over the PDFs, Rust book chapters and RFCs they name. Per
configuration it prints: gold text in the answer, impossible questions declined, answerable ones
wrongly declined, prompt tokens (the language model's own), time to first token p50/p95, total.

Every answer is recorded with the model's probability of starting the refusal sentence at its
first token, so the decline cut-off is applied afterwards without asking again; the cut-off is
calibrated on SQuAD sample500 questions (without the Normans/Rhine ones) with --calibrate. A
verification pass (does the one cited passage state the answer?) runs over recorded answers
with --verify. Records live in --work, one file per configuration: a rerun only adds what is
missing, and --report redraws the table and the plot from them.

    .venv/bin/python bench/answers.py                       # every configuration, then report
    .venv/bin/python bench/answers.py --configs today sentences-300 --limit 5   # a quick look
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from abstain import declined
from common import BENCH_DATA, REPO, write_results

import rag.answering
from rag.answering import Answering
from rag.config import Settings
from rag.embeddings import Embedder
from rag.generation import REFUSAL, build_messages
from rag.pipeline import RAG

SQUAD = BENCH_DATA / "squad"
SUBSET = REPO / "bench" / "results" / "abstain_subset.json"
OWN = REPO / "bench" / "answers_questions.json"
SUBSET_PER_SET = 10  # questions of each set every configuration answers
MAX_TOKENS = 40  # enough for a short answer or the refusal; the wait before it is the point

SHORT_PROMPT = (
    "Answer from the numbered sources only; cite them as [n]. If they do not say, reply "
    "exactly: {refusal}\n\nSources:\n\n{sources}"
)

# name: settings, and how the bench changes the engine for it
CONFIGS: dict[str, dict] = {
    "today": {"context_mode": "chunks", "context_tokens": 800, "count": "embedder"},
    "chunks-600": {"context_mode": "chunks", "context_tokens": 600},
    "chunks-400": {"context_mode": "chunks", "context_tokens": 400},
    "chunks-200": {"context_mode": "chunks", "context_tokens": 200},
    "sentences-300": {"context_mode": "sentences", "context_tokens": 300},
    "sentences-200": {"context_mode": "sentences", "context_tokens": 200},
    "sentences-150": {"context_mode": "sentences", "context_tokens": 150},
    "sentences-200-short": {"context_mode": "sentences", "context_tokens": 200,
                            "instructions": SHORT_PROMPT},
    "sentences-200-no-prefix-cache": {"context_mode": "sentences", "context_tokens": 200,
                                      "reset": True},
}


def squad_sets() -> tuple[list[tuple[str, bytes]], list[dict]]:
    data = json.loads((SQUAD / "squad2-dev-normans-rhine.json").read_text("utf-8"))["data"]
    files = [(f"{a['title']}.txt", "\n\n".join(p["context"] for p in a["paragraphs"]).encode())
             for a in data]
    by_id = {qa["id"]: qa for a in data for p in a["paragraphs"] for qa in p["qas"]}
    subset = json.loads(SUBSET.read_text("utf-8"))
    questions = [{"set": "squad" if kind == "answerable" else "impossible", "id": qid,
                  "question": by_id[qid]["question"],
                  "gold": [a["text"] for a in by_id[qid]["answers"]]}
                 for kind in ("answerable", "impossible") for qid in subset[kind]]
    return files, questions


def own_sets() -> tuple[list[tuple[str, bytes]], list[dict]]:
    items = json.loads(OWN.read_text("utf-8"))
    sources = sorted({item["source"] for item in items})
    files = [(Path(source).name, (BENCH_DATA / source).read_bytes()) for source in sources]
    questions = [{"set": "own", "id": f"own-{n}", "question": item["question"],
                  "gold": item["answer"], "source": Path(item["source"]).name,
                  "page": item.get("page"), "section": item.get("section")}
                 for n, item in enumerate(items)]
    return files, questions


def open_index(work: Path, name: str, files: list[tuple[str, bytes]], settings: Settings,
               embedder: Embedder) -> RAG:
    """Indexed once into --work and reused: the index is not what is measured."""
    engine = RAG(settings.model_copy(update={"data_dir": work / f"index-{name}"}),
                 embedder=embedder)
    if engine.store.count() == 0:
        results = engine.ingest(files)
        failed = [r.error for r in results if r.status == "failed"]
        if failed:
            raise SystemExit(f"indexing failed: {failed}")
    return engine


def configure(engine: RAG, config: dict) -> None:
    engine.update_settings(engine.settings.model_copy(update={
        "context_mode": config["context_mode"], "context_tokens": config["context_tokens"],
        "decline_probability": 1.0}))  # the cut-off is applied afterwards, from the records
    engine.answering.count_llm_tokens = (
        engine.embedder.count_tokens if config.get("count") == "embedder"
        else functools.partial(Answering.count_llm_tokens, engine.answering))
    rag.answering.build_messages = functools.partial(
        build_messages, **({"instructions": config["instructions"]}
                           if "instructions" in config else {}))


def ask(engine: RAG, item: dict, reset: bool) -> dict:
    if reset:
        engine.get_llm().load().reset()  # no evaluated prefix left to reuse
    started = time.perf_counter()
    answer = engine.ask(item["question"])
    retrieved = time.perf_counter() - started
    first, pieces = None, []
    for delta in answer.deltas:
        if first is None and delta.strip():
            first = time.perf_counter() - started
        pieces.append(delta)
    total = time.perf_counter() - started
    text = "".join(pieces)
    return {**item, "answer": text, "gate_refused": answer.refused,
            "declined_text": answer.refused or declined(text),
            "p_refusal": answer.refusal_probability, "prompt_tokens": answer.prompt_tokens,
            "retrieval_s": retrieved, "first_token_s": None if answer.refused else first,
            "total_s": total,
            "gold_in_answer": any(g.lower() in text.lower() for g in item["gold"]),
            "sources": [{"source": h.chunk.source, "page": h.chunk.page,
                         "section": h.chunk.heading, "text": h.chunk.text}
                        for h in answer.hits]}


def spread(questions: list[tuple[RAG, dict]], limit: int) -> list[tuple[RAG, dict]]:
    """`limit` questions of each set, evenly spaced over it: every document gets its turn."""
    kept = []
    for kind in dict.fromkeys(q["set"] for _, q in questions):
        group = [pair for pair in questions if pair[1]["set"] == kind]
        step = max(len(group) / limit, 1.0)
        kept += [group[int(i * step)] for i in range(min(limit, len(group)))]
    return kept


def run(args, settings: Settings, embedder: Embedder) -> None:
    squad_files, squad_questions = squad_sets()
    own_files, own_questions = own_sets() if OWN.exists() else ([], [])
    engines = {"squad": open_index(args.work, "squad", squad_files, settings, embedder)}
    if own_files:
        engines["own"] = open_index(args.work, "own", own_files, settings, embedder)
    for engine in engines.values():
        engine.llm = engines["squad"].get_llm()  # one model in memory
    engines["squad"].prepare_llm()
    questions = [(engines["squad"], q) for q in squad_questions]
    questions += [(engines["own"], q) for q in own_questions if own_files]
    if args.limit:
        questions = spread(questions, args.limit)
    if args.sets:
        questions = [(e, q) for e, q in questions if q["set"] in args.sets]
    for name in args.configs:
        path = args.work / f"{name}.json"
        records = json.loads(path.read_text("utf-8")) if path.exists() else []
        done = {r["id"] for r in records}
        todo = [(e, q) for e, q in questions if q["id"] not in done]
        if not todo:
            continue
        print(f"{name}: {len(todo)} questions to ask", flush=True)
        for engine in engines.values():
            configure(engine, CONFIGS[name])
        for engine, item in todo:
            record = ask(engine, item, CONFIGS[name].get("reset", False))
            records.append(record)
            path.write_text(json.dumps(records, indent=1, ensure_ascii=False), "utf-8")
            print(f"  {record['set']:10} {record['prompt_tokens'] or 0:4} tok "
                  f"ttft {record['first_token_s'] or 0:5.1f} s p(refuse) "
                  f"{record['p_refusal'] or 0:.2f} {'DECLINED' if record['declined_text'] else 'ok':8} "
                  f"{'GOLD' if record['gold_in_answer'] else '    '} {item['question'][:50]!r} -> "
                  f"{record['answer'][:60]!r}", flush=True)


# --- the decline cut-off ------------------------------------------------------------------


def calibrate(args, settings: Settings, embedder: Embedder) -> None:
    """The refusal probability at the first token for sample500 questions of other articles than
    Normans/Rhine, asked over all sample500 contexts with the configuration --calibrate names."""
    path = args.work / f"calibration-{args.calibrate}.json"
    records = json.loads(path.read_text("utf-8")) if path.exists() else []
    queries = json.loads((SQUAD / "sample500" / "queries.json").read_text("utf-8"))["queries"]
    truth = json.loads((SQUAD / "sample500" / "ground_truth.json").read_text("utf-8"))
    held_out = json.loads((SQUAD / "squad2-dev-normans-rhine.json").read_text("utf-8"))["data"]
    held_ids = {qa["id"] for a in held_out for p in a["paragraphs"] for qa in p["qas"]}
    contexts = sorted({q["context"] for q in queries if q["id"] not in held_ids})
    files = [(f"paragraph-{n:03}.txt", text.encode()) for n, text in enumerate(contexts)]
    # the first token decides; a few more tell whether the model wrote a refusal of its own
    engine = open_index(args.work, "sample500", files,
                        settings.model_copy(update={"llm_max_tokens": 16}), embedder)
    configure(engine, CONFIGS[args.calibrate])
    engine.llm = engine.get_llm()
    engine.prepare_llm()
    candidates = [q for q in queries if q["id"] not in held_ids]
    chosen = ([q for q in candidates if truth[q["id"]]["is_impossible"]][: args.calibration_size]
              + [q for q in candidates if not truth[q["id"]]["is_impossible"]][
                  : args.calibration_size])
    done = {r["id"] for r in records}
    for q in chosen:
        if q["id"] in done:
            continue
        answer = engine.ask(q["question"])
        text = "".join(answer.deltas) if not answer.refused else REFUSAL
        records.append({"id": q["id"], "impossible": truth[q["id"]]["is_impossible"],
                        "gate_refused": answer.refused, "p_refusal": answer.refusal_probability,
                        "answer": text})
        path.write_text(json.dumps(records, indent=1), "utf-8")
        print(f"  {'impossible' if records[-1]['impossible'] else 'answerable':10} "
              f"p(refuse) {answer.refusal_probability or 0:.2f} {q['question'][:60]!r}", flush=True)


def cutoff_table(records: list[dict]) -> tuple[list[tuple[float, float, float]], float]:
    """(cut-off, impossible declined, answerable declined) and the cut-off with the largest
    difference of the two (Youden's J), the higher cut-off on a tie."""
    rows = []
    for cutoff in np.arange(0.05, 1.0, 0.05):
        def rate(kind: bool, cut: float = cutoff) -> float:
            group = [r for r in records if r["impossible"] == kind]
            return sum(r["gate_refused"] or declined(r["answer"]) or (r["p_refusal"] or 0) >= cut
                       for r in group) / max(len(group), 1)
        rows.append((float(round(cutoff, 2)), rate(True), rate(False)))
    return rows, max(rows, key=lambda row: (round(row[1] - row[2], 6), row[0]))[0]


# --- the verification pass ----------------------------------------------------------------

VERIFY_PROMPT = ("Passage:\n{passage}\n\nQuestion: {question}\nProposed answer: {answer}\n\n"
                 "Does the passage state this answer to the question? Reply yes or no.")


def verify(args, settings: Settings) -> None:
    """Ask, for each recorded answer of --verify's configuration, whether its cited passage (or
    source 1) states it: one passage per prompt, timed."""
    path = args.work / f"{args.verify}.json"
    records = json.loads(path.read_text("utf-8"))
    engine = RAG(settings.model_copy(update={"data_dir": args.work / "index-squad"}))
    engine.prepare_llm()
    for record in records:
        if "verified" in record or record["gate_refused"] or not record["sources"]:
            continue
        cited = re.search(r"\[(\d+)\]", record["answer"])
        number = int(cited.group(1)) if cited else 1
        source = record["sources"][min(number, len(record["sources"])) - 1]
        started = time.perf_counter()
        reply = engine.complete([{"role": "user", "content": VERIFY_PROMPT.format(
            passage=source["text"], question=record["question"],
            answer=record["answer"].strip())}], max_tokens=2)
        record["verify_s"] = time.perf_counter() - started
        record["verified"] = not reply.strip().lower().startswith("no")
        path.write_text(json.dumps(records, indent=1, ensure_ascii=False), "utf-8")
        print(f"  {record['set']:10} {'yes' if record['verified'] else 'NO ':3} "
              f"{record['verify_s']:4.1f} s {record['question'][:60]!r}", flush=True)


# --- the report -----------------------------------------------------------------------------


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(records: list[dict], cutoff: float | None, use_verify: bool = False) -> dict:
    def is_declined(r: dict) -> bool:
        return (r["declined_text"] or (cutoff is not None and (r["p_refusal"] or 0) >= cutoff)
                or (use_verify and r.get("verified") is False))

    def of(kind: str) -> list[dict]:
        return [r for r in records if r["set"] == kind]

    answerable = of("squad") + of("own")
    answered = [r for r in records if not r["gate_refused"] and r["first_token_s"] is not None]
    ttft = [r["first_token_s"] for r in answered]
    return {
        "squad_gold": sum(r["gold_in_answer"] and not is_declined(r) for r in of("squad")),
        "squad_n": len(of("squad")),
        "own_gold": sum(r["gold_in_answer"] and not is_declined(r) for r in of("own")),
        "own_n": len(of("own")),
        "impossible_declined": sum(is_declined(r) for r in of("impossible")),
        "impossible_n": len(of("impossible")),
        "wrongly_declined": sum(is_declined(r) for r in answerable),
        "answerable_n": len(answerable),
        "tokens": float(np.mean([r["prompt_tokens"] for r in answered if r["prompt_tokens"]]))
        if answered else float("nan"),
        "ttft_p50": _p(ttft, 50), "ttft_p95": _p(ttft, 95),
        "total_p50": _p([r["total_s"] for r in answered], 50),
        "verify_s": _p([r["verify_s"] for r in records if "verify_s" in r], 50),
    }


def report(args) -> None:
    rows, cutoff = [], None
    calibration = sorted(args.work.glob("calibration-*.json"))
    lines = ["# Answer quality against prompt size (`bench/answers.py`)", ""]
    if calibration:
        records = json.loads(calibration[0].read_text("utf-8"))
        table, cutoff = cutoff_table(records)
        lines += [(f"Decline cut-off calibrated on {len(records)} SQuAD sample500 questions of "
                   f"other articles ({calibration[0].stem.removeprefix('calibration-')}): chosen "
                   f"**{cutoff:.2f}** (the largest difference of the two rates); shipped "
                   f"default {Settings().decline_cutoff:.2f}."),
                  "", "| cut-off | impossible declined | answerable declined |", "|---:|---:|---:|"]
        lines += [f"| {c:.2f} | {i:.0%} | {a:.0%} |" for c, i, a in table]
        lines.append("")
    header = ("| configuration | gold in answer (SQuAD) | gold in answer (own) | impossible "
              "declined | answerable wrongly declined | prompt tokens | TTFT p50 | TTFT p95 | "
              "total p50 |")
    squad_questions, own_questions = squad_sets()[1], own_sets()[1]
    subset = {q["id"] for _, q in spread([(None, q) for q in squad_questions + own_questions],
                                         SUBSET_PER_SET)}
    records_of = {name: json.loads((args.work / f"{name}.json").read_text("utf-8"))
                  for name in CONFIGS if (args.work / f"{name}.json").exists()}
    lines += [(f"### Every configuration on the same {len(subset)} questions "
              f"({SUBSET_PER_SET} of each set, evenly spaced)"), "", header,
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, records in records_of.items():
        s = summarise([r for r in records if r["id"] in subset], None)
        rows.append((name, s))
        lines.append(_row(name, s))
    finalists = {name: records for name, records in records_of.items()
                 if len(records) > len(subset)}
    if finalists:
        lines += ["", ("### Every question asked of a configuration (counts say how many), "
                       "with the decline cut-off and the verification pass"),
                  "", header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, records in finalists.items():
        variants = [(name, None, False)]
        for cut in sorted({cutoff, Settings().decline_cutoff} - {None, 1.0}):
            variants.append((f"{name} + decline >= {cut:.2f}", cut, False))
        if any("verified" in r for r in records):
            variants.append((f"{name} + verification", None, True))
            if cutoff is not None:
                variants.append((f"{name} + decline + verification", cutoff, True))
        for label, cut, use_verify in variants:
            s = summarise(records, cut, use_verify)
            extra = f" (+{s['verify_s']:.1f} s verification p50)" if use_verify else ""
            lines.append(_row(label + extra, s))
    text = "\n".join(lines) + "\n"
    print(text)
    write_results(REPO / "bench" / "results" / "answers.md", text, "## Decision")
    plot(rows, args.png, len(subset))


def _row(label: str, s: dict) -> str:
    return (f"| {label} | {s['squad_gold']}/{s['squad_n']} | {s['own_gold']}/{s['own_n']} "
            f"| {s['impossible_declined']}/{s['impossible_n']} | {s['wrongly_declined']}/"
            f"{s['answerable_n']} | {s['tokens']:.0f} | {s['ttft_p50']:.1f} s | "
            f"{s['ttft_p95']:.1f} s | {s['total_p50']:.1f} s |")


def plot(rows: list[tuple[str, dict]], png: Path, questions: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    markers = "osD^vP*Xh<>"
    for (label, s), marker in zip(rows, markers * 2, strict=False):
        accuracy = (s["squad_gold"] + s["own_gold"]) / max(s["squad_n"] + s["own_n"], 1)
        ax.errorbar(s["ttft_p50"], accuracy, xerr=[[0], [s["ttft_p95"] - s["ttft_p50"]]],
                    fmt=marker, capsize=3, markersize=7, label=f"{label} ({s['tokens']:.0f} tok)")
    ax.axvline(6, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("time to first token, s (p50; bar to p95)")
    ax.set_ylabel("answers containing the gold text (SQuAD + own)")
    ax.set_title(f"Qwen2.5-Coder-1.5B on 2 CPU cores, {questions} questions per configuration")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"{png}: {png.stat().st_size / 1024:.0f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--limit", type=int,
                        help="ask only n questions of each set, evenly spaced over it")
    parser.add_argument("--sets", nargs="+", choices=["squad", "impossible", "own"],
                        help="ask only the questions of these sets")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench" / "answers")
    parser.add_argument("--calibrate", choices=list(CONFIGS),
                        help="record first-token refusal probabilities on sample500 with this "
                             "configuration")
    parser.add_argument("--calibration-size", type=int, default=60,
                        help="questions of each kind (impossible, answerable) to calibrate on")
    parser.add_argument("--verify", choices=list(CONFIGS),
                        help="run the verification pass over this configuration's records")
    parser.add_argument("--report", action="store_true", help="only redraw table and plot")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "images" / "answers.png")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    settings = Settings(llm_max_tokens=MAX_TOKENS)
    if not args.report:
        embedder = Embedder(settings.embedding_model, settings.embedding_batch_size)
        if args.calibrate:
            calibrate(args, settings, embedder)
        elif args.verify:
            verify(args, settings)
        else:
            run(args, settings, embedder)
    report(args)


if __name__ == "__main__":
    main()
