"""The refusal gate (issue 12, point 5): does keyword evidence let good questions with a low best
cosine through, while off-topic ones stay refused?

Per question, one ranking through the app's own path (`RAG.rank` to the depth `retrieve` uses,
top_k x fetch_multiplier, hybrid on) gives the gate features, cached in --features so the
tables can be redrawn without re-indexing or re-asking:
- best: best dense cosine of the candidates (today's gate: refused when < 0.40);
- bm25: top BM25 score / the question's maximum possible BM25 score (sum of the IDF of its
  terms, a term no chunk holds at the highest IDF; `LexicalIndex.term_idf`): in [0, 1);
- cover1 / cover5: share of the question's IDF-weighted terms that occur in the top hit / in the
  best-covered of the top 5 hits;
- margin: best cosine minus the median cosine of all candidates fetched.

Sets:
(a) SciFact queries (answerable) vs SQuAD 2.0 dev questions (off-topic, as bench/threshold.py
    builds them) on the FULL SciFact index (--scifact-index, built here if it lacks READY, then
    read from a copy). TRAIN side: SciFact train queries + the SQuAD questions at even positions;
    TEST side: SciFact test queries + those at odd positions. Rules are calibrated on TRAIN only.
(b) README sample: this repo's README.md indexed alone; the 12 answerable questions of
    samples/questions.jsonl and its 6 off-topic ones.
(c) bench/answers_questions.json when it exists: its answerable questions over the documents its
    "source" fields name (paths relative to the bench data dir), those documents indexed alone;
    off-topic: a fixed 100 SQuAD questions of the TEST side.
(s) corpus size: the full SciFact index cut to 50..5,000 chunks (whole abstracts at random; an
    answerable query's own abstracts added): best cosine for every size, BM25 evidence (IDF of
    each subset) for --bm25-sizes. Caches --sizes-cosine and --sizes-bm25.

Rules (a question is answered when ...):
- cosine:  best >= T
- bm25 / cover1 / cover5:  best >= T_high, or best >= T_low and evidence >= C
- margin:  best >= T_high, or best >= T_low and margin >= M
Picked on TRAIN: among rules refusing >= 92% of off-topic questions (margin for the >= 90%
target on test), the lowest false refusal; ties: more off-topic refused, then the rule closest
to today's (T_high = 0.40, highest T_low, lowest C). The same criterion picks the floor and cut
of the keyword rescue over the (s) sizes. What shipped and why: bench/results/gate.md, Decision.

    nice -n 5 .venv/bin/python bench/gate.py --sets a b c s  # features (CPU: see Decision)
    .venv/bin/python bench/gate.py --sets                      # tables from the cache only
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from common import BENCH_DATA, REPO, write_results

from rag.config import Settings
from rag.embeddings import Embedder
from rag.evaluation import index, load_beir
from rag.lexical import LexicalIndex, indexed_text, terms
from rag.pipeline import RAG

SQUAD = BENCH_DATA / "squad"
QUESTIONS_FILE = REPO / "bench" / "answers_questions.json"
MIN_REFUSED_TRAIN = 0.92
OWN_OFFTOPIC = 100
THREADS = [1]
EVIDENCE = ("bm25", "cover1", "cover5", "margin")
_EMBEDDER: list[Embedder] = []  # one per run, loaded on first use


def engine(data_dir: Path) -> RAG:
    if not _EMBEDDER:
        settings = Settings()
        _EMBEDDER.append(Embedder(settings.embedding_model, settings.embedding_batch_size))
        torch.set_num_threads(THREADS[0])  # after the Embedder, which sets the core count
    return RAG(Settings(data_dir=data_dir), embedder=_EMBEDDER[0])


# --- question sets ---------------------------------------------------------------------------

def offtopic_questions() -> list[str]:
    """SQuAD 2.0 dev questions, as bench/threshold.py's (a): Normans/Rhine answerable and
    impossible, then sample500 questions of other articles; duplicates by id dropped."""
    data = json.loads((SQUAD / "squad2-dev-normans-rhine.json").read_text(encoding="utf-8"))["data"]
    in_file = {qa["id"] for a in data for p in a["paragraphs"] for qa in p["qas"]}
    sample = json.loads((SQUAD / "sample500" / "queries.json").read_text(encoding="utf-8"))
    qas = [qa for a in data for p in a["paragraphs"] for qa in p["qas"]]
    ordered = ({qa["id"]: qa["question"] for qa in qas if not qa["is_impossible"]}
               | {qa["id"]: qa["question"] for qa in qas if qa["is_impossible"]}
               | {q["id"]: q["question"] for q in sample["queries"] if q["id"] not in in_file})
    return list(ordered.values())


def readme_questions() -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (REPO / "samples" / "questions.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    answerable = [r["question"] for r in rows if r.get("expected_source") or r.get("expected_answer")]
    return answerable, [r["question"] for r in rows if r["question"] not in answerable]


def own_questions() -> tuple[list[str], list[str]]:
    """bench/answers_questions.json: a list of {"question", "source"} (or {"questions": [...]});
    "source" is one path or a list of paths relative to the bench data dir."""
    data = json.loads(QUESTIONS_FILE.read_text(encoding="utf-8"))
    rows = data["questions"] if isinstance(data, dict) else data
    sources: list[str] = []
    for row in rows:
        named = row.get("source") or row.get("sources") or []
        for path in [named] if isinstance(named, str) else named:
            if path not in sources:
                sources.append(path)
    return [row["question"] for row in rows], sources


# --- features --------------------------------------------------------------------------------

def features(rag: RAG, question: str) -> dict:
    settings = rag.settings
    hits = rag.rank(question, depth=settings.top_k * settings.fetch_multiplier)
    if not hits:
        return {"best": None}
    sims = [hit.similarity for hit in hits]
    weights = rag.lexical.term_idf(question)
    ceiling = sum(w for _, w in weights)
    idf = dict(weights)  # unique terms for coverage
    unique_total = sum(idf.values())

    def coverage(hit) -> float:
        if not unique_total:
            return 0.0
        present = set(terms([indexed_text(hit.chunk)])[0])
        return sum(w for t, w in idf.items() if t in present) / unique_total

    covers = [coverage(hit) for hit in hits[:5]]
    top_lexical = max((hit.lexical or 0.0 for hit in hits), default=0.0)
    return {
        "best": max(sims),
        "median": statistics.median(sims),
        "bm25": top_lexical / ceiling if ceiling else 0.0,
        "cover1": covers[0],
        "cover5": max(covers),
        "candidates": len(hits),
        "terms": len(weights),
    }


def featurise(rag: RAG, questions: list[str], label: str) -> list[dict]:
    started = time.perf_counter()
    rows = [features(rag, q) for q in questions]
    print(f"  {label}: {len(rows)} questions in {time.perf_counter() - started:.0f} s", flush=True)
    return rows


def ensure_scifact(path: Path) -> None:
    if (path / "READY").exists():
        return
    print(f"building the full SciFact index in {path} (about 10-15 min)", flush=True)
    started = time.perf_counter()
    rag = engine(path)
    index(rag, load_beir(BENCH_DATA / "scifact", "test"))  # the corpus is the same for any split
    (path / "READY").write_text(f"{rag.store.count()} chunks\n", encoding="utf-8")
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)


def scifact_copy(args) -> RAG:
    """The full SciFact index, opened from a fresh copy: the original is never written."""
    ensure_scifact(args.scifact_index)
    copy = args.work / "scifact-full-copy"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(args.scifact_index, copy)
    return engine(copy)


def run_a(args, cache: dict) -> None:
    rag = scifact_copy(args)
    print(f"(a) full SciFact index: {rag.store.count()} chunks", flush=True)
    offtopic = offtopic_questions()
    cache["a"] = {
        "index": f"{args.scifact_index} ({rag.store.count()} chunks)",
        "train": {
            "answerable": featurise(rag, list(load_beir(BENCH_DATA / "scifact", "train")
                                              .queries.values()), "SciFact train queries"),
            "offtopic": featurise(rag, offtopic[0::2], "SQuAD, even positions"),
        },
        "test": {
            "answerable": featurise(rag, list(load_beir(BENCH_DATA / "scifact", "test")
                                              .queries.values()), "SciFact test queries"),
            "offtopic": featurise(rag, offtopic[1::2], "SQuAD, odd positions"),
        },
    }


def fresh_index(path: Path, files: list[tuple[str, bytes]]) -> RAG:
    if path.exists():
        shutil.rmtree(path)
    rag = engine(path)
    results = rag.ingest(files)
    failed = [r for r in results if r.status != "indexed"]
    if failed:
        raise SystemExit(f"ingest failed: {failed}")
    return rag


def run_b(args, cache: dict) -> None:
    rag = fresh_index(args.work / "readme", [("README.md", (REPO / "README.md").read_bytes())])
    print(f"(b) README.md alone: {rag.store.count()} chunks", flush=True)
    answerable, offtopic = readme_questions()
    cache["b"] = {"index": f"README.md alone ({rag.store.count()} chunks)",
                  "chunks": rag.store.count(),
                  "answerable": featurise(rag, answerable, "answerable"),
                  "offtopic": featurise(rag, offtopic, "off-topic"),
                  "questions": answerable + offtopic}


def run_c(args, cache: dict) -> None:
    if not QUESTIONS_FILE.exists():
        print(f"(c) skipped: {QUESTIONS_FILE} does not exist", flush=True)
        return
    questions, sources = own_questions()
    files = [(Path(s).name, (BENCH_DATA / s).read_bytes()) for s in sources]
    rag = fresh_index(args.work / "own", files)
    print(f"(c) {len(sources)} documents: {rag.store.count()} chunks", flush=True)
    test_side = offtopic_questions()[1::2]
    cache["c"] = {"index": f"{len(sources)} documents ({rag.store.count()} chunks)",
                  "chunks": rag.store.count(),
                  "answerable": featurise(rag, questions, "answerable"),
                  "offtopic": featurise(rag, test_side[:: len(test_side) // OWN_OFFTOPIC]
                                        [:OWN_OFFTOPIC], "off-topic SQuAD")}


# --- corpus size (set s) ----------------------------------------------------------------------

def scifact_vectors(rag: RAG) -> tuple[list, np.ndarray, np.ndarray]:
    chunks = list(rag.store.chunks())
    ids = [c.chunk_id for c in chunks]
    vectors = {}
    for i in range(0, len(ids), 2000):
        vectors.update((c.chunk_id, v) for c, v in rag.store.get_chunks(ids[i:i + 2000]))
    matrix = np.array([vectors[i] for i in ids], dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return chunks, matrix, np.array([c.source.removesuffix(".md") for c in chunks])


def size_questions() -> list[tuple[str, str, list[str]]]:
    """(text, kind, relevant documents): kind train/test for SciFact queries, off-even/off-odd
    for the SQuAD questions of the TRAIN/TEST side."""
    train = load_beir(BENCH_DATA / "scifact", "train")
    test = load_beir(BENCH_DATA / "scifact", "test")
    return ([(t, "train", sorted(train.qrels[q])) for q, t in train.queries.items()]
            + [(t, "test", sorted(test.qrels[q])) for q, t in test.queries.items()]
            + [(t, "off-even" if i % 2 == 0 else "off-odd", [])
               for i, t in enumerate(offtopic_questions())])


def run_sizes(args, _cache: dict) -> None:
    """SciFact cut to smaller corpora: whole abstracts drawn at random until the subset holds
    `size` chunks; an answerable question's own abstracts are added to the subset it is asked
    on. Best cosine is exact over the subset's stored vectors (the full index's chunks, no
    re-embedding); BM25 evidence needs a BM25 index per subset (and per answerable question,
    whose abstracts change the IDF), so it is computed for the sizes in --bm25-sizes only."""
    rag = scifact_copy(args)
    chunks, matrix, doc = scifact_vectors(rag)
    questions = size_questions()
    embedder = _EMBEDDER[0]
    queries = np.array([embedder.embed_query(t) for t, _, _ in questions], dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    similarity = queries @ matrix.T
    docs = np.unique(doc)
    by_doc = {d: np.flatnonzero(doc == d) for d in docs}

    def subset(rng, size: int) -> np.ndarray:
        picked, total = [], 0
        for d in rng.permutation(docs):
            if total >= size:
                break
            picked.append(by_doc[d])
            total += len(by_doc[d])
        return np.concatenate(picked)

    def with_relevant(base: np.ndarray, relevant: list[str]) -> np.ndarray:
        return np.unique(np.concatenate([base] + [by_doc[d] for d in relevant if d in by_doc]))

    kinds = [kind for _, kind, _ in questions]
    cosine = {"sizes": args.cosine_sizes + [len(chunks)], "kinds": kinds, "best": {}}
    rng = np.random.default_rng(0)
    for size in cosine["sizes"]:
        cosine["best"][size] = []
        for _ in range(5 if size < len(chunks) else 1):
            base = subset(rng, size)
            cosine["best"][size].append([
                round(float(similarity[j][with_relevant(base, rel) if rel else base].max()), 4)
                for j, (_, _, rel) in enumerate(questions)])
    args.sizes_cosine.write_text(json.dumps(cosine))
    print(f"(s) best cosine at {cosine['sizes']} chunks", flush=True)

    lexical = {"sizes": args.bm25_sizes, "kinds": kinds, "best": {}, "bm25": {}, "chunks": {}}
    rng = np.random.default_rng(1)
    scratch = args.work / "sizes-bm25"
    for size in args.bm25_sizes:
        for key in ("best", "bm25", "chunks"):
            lexical[key][size] = []
        for rep in range(args.bm25_repeats):
            base = subset(rng, size)
            indexes: dict[tuple, LexicalIndex] = {}
            best, evidence = [], []
            for j, (text, _, rel) in enumerate(questions):
                rows = with_relevant(base, rel) if rel else base
                key = tuple(rel)
                if key not in indexes:
                    if len(indexes) > 50:  # keep the bare subset's index, drop the others
                        indexes = {k: v for k, v in indexes.items() if not k}
                    indexes[key] = LexicalIndex(scratch / f"{size}-{rep}-{j}")
                    indexes[key].rebuild([chunks[i] for i in rows])
                best.append(float(similarity[j][rows].max()))
                ceiling = sum(w for _, w in indexes[key].term_idf(text))
                top = max(indexes[key].scores(text).values(), default=0.0)
                evidence.append(top / ceiling if ceiling else 0.0)
            lexical["best"][size].append(best)
            lexical["bm25"][size].append(evidence)
            lexical["chunks"][size].append(len(base))
            args.sizes_bm25.write_text(json.dumps(lexical))
            print(f"(s) BM25 evidence at {size} chunks, draw {rep + 1}", flush=True)


# --- rules -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    kind: str  # "cosine" or one of EVIDENCE
    high: float  # cosine that answers alone
    low: float | None = None  # cosine that answers with evidence >= cut
    cut: float | None = None

    def __str__(self) -> str:
        if self.kind == "cosine":
            return f"cosine >= {self.high:.2f}"
        return (f"cosine >= {self.high:.2f}, or cosine >= {self.low:.2f} and "
                f"{self.kind} >= {self.cut:.2f}")

    def answers(self, table: dict[str, np.ndarray]) -> np.ndarray:
        best = table["best"]
        answered = best >= self.high
        if self.kind != "cosine":
            answered |= (best >= self.low) & (table[self.kind] >= self.cut)
        return answered


def arrays(rows: list[dict]) -> dict[str, np.ndarray]:
    def column(name: str) -> np.ndarray:
        if name == "margin":
            return np.array([-np.inf if r["best"] is None else r["best"] - r["median"]
                             for r in rows])
        return np.array([-np.inf if r.get(name) is None else r[name] for r in rows])
    return {name: column(name) for name in ("best", *EVIDENCE)}


_PREPARED: dict[int, tuple[dict, dict]] = {}


def rates(rule: Rule, side: dict) -> tuple[float, float, int, int]:
    """(off-topic refused share, false refusal share, false refusals, off-topic refused)."""
    if id(side) not in _PREPARED:
        _PREPARED[id(side)] = arrays(side["answerable"]), arrays(side["offtopic"])
    pos, neg = _PREPARED[id(side)]
    false = int((~rule.answers(pos)).sum())
    refused = int((~rule.answers(neg)).sum())
    return refused / len(side["offtopic"]), false / len(side["answerable"]), false, refused


def grid() -> list[Rule]:
    steps = lambda lo, hi, d: [round(x, 2) for x in np.arange(lo, hi + d / 2, d)]
    rules = [Rule("cosine", t) for t in steps(0.20, 0.60, 0.01)]
    for kind in EVIDENCE:
        cuts = steps(0.0, 0.30, 0.01) if kind == "margin" else steps(0.0, 1.0, 0.02)
        for high in steps(0.35, 0.55, 0.01):
            for low in steps(0.15, high - 0.01, 0.01):
                rules += [Rule(kind, high, low, cut) for cut in cuts]
    return rules


def choose(train: dict, rules: list[Rule]) -> tuple[Rule | None, dict[str, Rule]]:
    """The chosen rule and the best of each kind, by the train criterion."""
    def key(rule: Rule):
        refused, false, *_ = rates(rule, train)
        return (false, -refused, abs(rule.high - 0.40), -(rule.low or rule.high), rule.cut or 0.0)

    best_of: dict[str, Rule] = {}
    for rule in rules:
        if rates(rule, train)[0] < MIN_REFUSED_TRAIN:
            continue
        if rule.kind not in best_of or key(rule) < key(best_of[rule.kind]):
            best_of[rule.kind] = rule
    chosen = min(best_of.values(), key=key) if best_of else None
    return chosen, best_of


def with_fixed_high(rules: list[Rule], high: float) -> list[Rule]:
    return [r for r in rules if r.kind != "cosine" and r.high == high]


# --- report ----------------------------------------------------------------------------------

def table(cache: dict, rows: list[tuple[str, Rule]]) -> str:
    a, b, c = cache.get("a"), cache.get("b"), cache.get("c")
    head = ["rule"]
    if a:
        head += ["SciFact train: off-topic refused / false refusal",
                 "SciFact test: off-topic refused", "SciFact test: false refusal"]
    if b:
        head += [f"README sample: false refusals (of {len(b['answerable'])})",
                 f"README sample: off-topic refused (of {len(b['offtopic'])})"]
    if c:
        head += [f"own set: false refusals (of {len(c['answerable'])})",
                 f"own set: off-topic refused (of {len(c['offtopic'])})"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for label, rule in rows:
        cells = [f"{label}: `{rule}`"]
        if a:
            tr, tf, *_ = rates(rule, a["train"])
            refused, false, nf, nr = rates(rule, a["test"])
            cells += [f"{tr:.1%} / {tf:.1%}", f"{refused:.1%} ({nr}/{len(a['test']['offtopic'])})",
                      f"{false:.1%} ({nf}/{len(a['test']['answerable'])})"]
        for side in (b, c):
            if side:
                _, _, nf, nr = rates(rule, side)
                cells += [f"{nf}/{len(side['answerable'])}", f"{nr}/{len(side['offtopic'])}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_question(b: dict, rule: Rule, today: Rule) -> str:
    lines = ["| README question | best cosine | margin | bm25 | cover1 | cover5 | today | train pick |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for group in ("answerable", "offtopic"):
        table_ = arrays(b[group])
        now, new = today.answers(table_), rule.answers(table_)
        start = 0 if group == "answerable" else len(b["answerable"])
        for i, row in enumerate(b[group]):
            q = b["questions"][start + i]
            mark = lambda ok: "answered" if ok else "refused"
            lines.append(f"| {q}{'' if group == 'answerable' else ' (off-topic)'} | "
                         f"{row['best']:.3f} | {row['best'] - row['median']:.3f} | "
                         f"{row['bm25']:.3f} | {row['cover1']:.2f} | {row['cover5']:.2f} | "
                         f"{mark(now[i])} | {mark(new[i])} |")
    return "\n".join(lines)


def report(cache: dict) -> tuple[str, Rule | None]:
    today = Rule("cosine", 0.40)
    if "a" not in cache:
        return "no (a) features cached: run with --sets a", None
    rules = grid()
    chosen, best_of = choose(cache["a"]["train"], rules)
    _, fixed = choose(cache["a"]["train"], with_fixed_high(rules, 0.40))
    rows = [("today", today)]
    rows += [(f"best {kind} (train)", rule) for kind, rule in best_of.items()
             if rule != chosen]
    rows += [(f"best {kind}, T_high kept at 0.40 (train)", rule) for kind, rule in fixed.items()
             if rule != chosen and rule not in best_of.values()]
    if chosen is not None:
        rows.append(("**train pick**", chosen))
    a = cache["a"]
    text = [
        (f"(a) {a['index']}: TRAIN {len(a['train']['answerable'])} SciFact train queries + "
        f"{len(a['train']['offtopic'])} SQuAD questions (even positions); TEST "
        f"{len(a['test']['answerable'])} SciFact test queries + {len(a['test']['offtopic'])} "
        "SQuAD questions (odd positions)."),
    ]
    if "b" in cache:
        text.append(f"(b) {cache['b']['index']}: samples/questions.jsonl.")
    if "c" in cache:
        text.append(f"(c) {cache['c']['index']}: bench/answers_questions.json + "
                    f"{len(cache['c']['offtopic'])} SQuAD questions of the TEST side.")
    text += [
        (f"Grid: {len(rules)} rules; chosen on TRAIN only: lowest false refusal among rules "
        f"refusing >= {MIN_REFUSED_TRAIN:.0%} of off-topic questions."),
        "",
        table(cache, rows),
        "",
    ]
    if "b" in cache and chosen is not None:
        text += [("Per README question (features of one ranking; margin = best - median cosine "
                 "of the candidates):"), "", per_question(cache["b"], chosen, today), ""]
    return "\n".join(text), chosen


# --- report: corpus size -----------------------------------------------------------------------

@dataclass(frozen=True)
class SizeRule:
    """Answer when best >= threshold, or best >= floor(N) and bm25 >= cut, where
    floor(N) = floor + slope * log10(N / 100) for an index of N chunks (capped at threshold)."""
    floor: float
    cut: float
    slope: float = 0.0
    threshold: float = 0.40

    def low(self, chunks: float) -> float:
        return min(self.threshold, self.floor + self.slope * float(np.log10(chunks / 100)))

    def answers(self, best: np.ndarray, evidence: np.ndarray, chunks: float) -> np.ndarray:
        return (best >= self.threshold) | ((best >= self.low(chunks)) & (evidence >= self.cut))

    def __str__(self) -> str:
        if self.floor >= self.threshold and not self.slope:
            return f"cosine >= {self.threshold:.2f}"
        floor = (f"{self.floor:.2f} + {self.slope:.2f} x log10(chunks / 100)" if self.slope
                 else f"{self.floor:.2f}")
        return f"cosine >= {self.threshold:.2f}, or cosine >= {floor} and bm25 >= {self.cut:.2f}"


def size_sides(cache: dict, lexical: dict) -> dict[str, dict[int, tuple]]:
    """side -> chunks -> (answerable best, evidence, off-topic best, evidence)."""
    kinds = np.array(lexical["kinds"])
    sides: dict[str, dict[int, tuple]] = {"train": {}, "test": {}}
    for size in lexical["best"]:
        best, evidence = np.array(lexical["best"][size]), np.array(lexical["bm25"][size])
        chunks = int(np.mean(lexical["chunks"][size]))
        for side, (pos, neg) in {"train": ("train", "off-even"), "test": ("test", "off-odd")}.items():
            sides[side][chunks] = (best[:, kinds == pos].ravel(), evidence[:, kinds == pos].ravel(),
                                   best[:, kinds == neg].ravel(), evidence[:, kinds == neg].ravel())
    if "a" in cache:
        full = int(cache["a"]["index"].split("(")[1].split()[0])
        for side in ("train", "test"):
            pos, neg = arrays(cache["a"][side]["answerable"]), arrays(cache["a"][side]["offtopic"])
            sides[side][full] = (pos["best"], pos["bm25"], neg["best"], neg["bm25"])
    return sides


def size_rates(rule: SizeRule, by_size: dict[int, tuple]) -> dict[int, tuple[float, float]]:
    """chunks -> (off-topic refused, false refusal)."""
    return {n: (float(1 - rule.answers(ob, oe, n).mean()), float(1 - rule.answers(ab, ae, n).mean()))
            for n, (ab, ae, ob, oe) in sorted(by_size.items())}


def choose_size_rule(train: dict[int, tuple], slopes: list[float]) -> SizeRule:
    """Lowest mean false refusal over the sizes among rules refusing >= 92% of off-topic
    questions at every size; ties: more off-topic refused at the worst size, higher floor."""
    best_key, best_rule = None, None
    for slope in slopes:
        for floor in np.arange(0.15, 0.405, 0.01):
            for cut in np.arange(0.0, 0.605, 0.01):
                rule = SizeRule(round(float(floor), 2), round(float(cut), 2), slope)
                rates_ = size_rates(rule, train).values()
                worst = min(r[0] for r in rates_)
                if worst < MIN_REFUSED_TRAIN:
                    continue
                key = (round(float(np.mean([r[1] for r in rates_])), 9), -worst, -rule.floor)
                if best_key is None or key < best_key:
                    best_key, best_rule = key, rule
    return best_rule


def report_set(rule: SizeRule, side: dict) -> str:
    pos, neg = arrays(side["answerable"]), arrays(side["offtopic"])
    chunks = side["chunks"]
    false = int((~rule.answers(pos["best"], pos["bm25"], chunks)).sum())
    refused = int((~rule.answers(neg["best"], neg["bm25"], chunks)).sum())
    return f"{false}/{len(side['answerable'])} | {refused}/{len(side['offtopic'])}"


def size_report(cache: dict, cosine_file: Path, bm25_file: Path) -> str:
    lines: list[str] = []
    if cosine_file.exists():
        d = json.loads(cosine_file.read_text())
        kinds = np.array(d["kinds"])
        lines += ["### Off-topic questions score higher on a bigger index",
                  "",
                  ("SciFact cut to N chunks (whole abstracts at random, 5 draws; an answerable "
                  "query's own abstracts added), best cosine exact over the subset."),
                  "",
                  ("| chunks | off-topic best cosine, median / 92nd percentile (train side) | "
                  "off-topic refused at 0.40 (test side) | SciFact test refused at 0.40 |"),
                  "|---:|---:|---:|---:|"]
        for size in d["sizes"]:
            best = np.array(d["best"][str(size)])
            off, off_test, pos = best[:, kinds == "off-even"], best[:, kinds == "off-odd"], \
                best[:, kinds == "test"]
            lines.append(f"| {size} | {np.median(off):.3f} / {np.percentile(off, 92):.3f} | "
                         f"{np.mean(off_test < 0.40):.1%} | {np.mean(pos < 0.40):.1%} |")
        lines.append("")
    if bm25_file.exists() and "b" in cache and "c" in cache:
        sides = size_sides(cache, json.loads(bm25_file.read_text()))
        small = {n: v for n, v in sides["train"].items() if n < 1000}
        rules = [("today", SizeRule(0.40, 0.0)),
                 ("chosen on train, sizes < 1,000 chunks", choose_size_rule(small, [0.0])),
                 ("chosen on train, every size", choose_size_rule(sides["train"], [0.0])),
                 ("chosen on train, every size, floor rising with log10(chunks)",
                  choose_size_rule(sides["train"], [round(0.01 * i, 2) for i in range(16)])),
                 ("opt-in preset (RAG_KEYWORD_FLOOR=0.25)", SizeRule(0.25, 0.15)),
                 ("opt-in, stricter", SizeRule(0.30, 0.15))]
        sizes = sorted(sides["test"])
        head = (["rule"] + [f"SciFact {n} chunks (test): off-topic refused / false refusal"
                            for n in sizes]
                + [f"README ({cache['b']['chunks']} chunks): false refusals", "off-topic refused",
                   f"own set ({cache['c']['chunks']} chunks): false refusals", "off-topic refused"])
        lines += ["### Keyword rescue by index size", "",
                  "BM25 evidence recomputed on each subset (its own IDF): sizes "
                  + ", ".join(str(n) for n in sizes[:-1]) + " from SciFact cut as above (draws: "
                  + ", ".join(str(len(v)) for v in json.loads(bm25_file.read_text())["chunks"]
                              .values()) + f"), {sizes[-1]} = the full index of (a).", "",
                  "| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        for label, rule in rules:
            cells = [f"{label}: `{rule}`"]
            cells += [f"{o:.1%} / {f:.1%}" for o, f in size_rates(rule, sides["test"]).values()]
            cells += [report_set(rule, cache["b"]), report_set(rule, cache["c"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="*", default=["a", "b", "c", "s"],
                        choices=["a", "b", "c", "s"],
                        help="sets to (re)compute; the cache serves the others")
    parser.add_argument("--scifact-index", type=Path, default=Path("/tmp/bench/scifact-full"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench/gate"))
    parser.add_argument("--features", type=Path, default=Path("/tmp/bench/gate/features.json"))
    parser.add_argument("--threads", type=int, default=1, help=(
        "torch threads; on 2 cores shared with other jobs 1 thread encodes a query ~10x faster "
        "than 2 (bench/threshold.py)"))
    parser.add_argument("--sizes-cosine", type=Path,
                        default=Path("/tmp/bench/gate/sizes-cosine.json"))
    parser.add_argument("--sizes-bm25", type=Path, default=Path("/tmp/bench/gate/sizes-bm25.json"))
    parser.add_argument("--cosine-sizes", type=int, nargs="*",
                        default=[50, 100, 200, 500, 1000, 2000, 5000])
    parser.add_argument("--bm25-sizes", type=int, nargs="*", default=[75, 200, 500])
    parser.add_argument("--bm25-repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gate.md")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    THREADS[0] = args.threads
    cache = json.loads(args.features.read_text()) if args.features.exists() else {}
    for name in args.sets:
        {"a": run_a, "b": run_b, "c": run_c, "s": run_sizes}[name](args, cache)
        args.features.write_text(json.dumps(cache))
    text, chosen = report(cache)
    text += "\n" + size_report(cache, args.sizes_cosine, args.sizes_bm25)
    print(text)
    if chosen is not None:
        print(f"train pick: {chosen}")
    write_results(args.out, "# Refusal gate: dense cosine and keyword evidence\n\n"
                  "`nice -n 5 .venv/bin/python bench/gate.py` (features cached in "
                  "/tmp/bench/gate/features.json; `--sets` with no names redraws from them).\n\n"
                  + text, "## Decision")


if __name__ == "__main__":
    main()
