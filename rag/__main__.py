"""Command line: python -m rag [--data-dir DIR] ingest|ask|list|delete|reindex|eval ..."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from rag.config import describe_validation_error
from rag.user_settings import load_settings


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # The same layering as the app: settings saved on its Settings page apply here too.
        settings = load_settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    except ValidationError as error:
        print(f"invalid settings: {describe_validation_error(error)}", file=sys.stderr)
        return 2
    from rag.pipeline import RAG  # after parsing, so --help answers without loading a model

    return args.run(RAG(settings), args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag", description=__doc__)
    parser.add_argument("--data-dir", type=Path, help="index folder (default: RAG_DATA_DIR or ./data)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="index files (PDF, Markdown, HTML, text)")
    ingest.add_argument("files", nargs="+", type=Path)
    ingest.set_defaults(run=_ingest)

    ask = commands.add_parser("ask", help="answer a question from the indexed documents")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.set_defaults(run=_ask)

    listing = commands.add_parser("list", help="list indexed documents")
    listing.set_defaults(run=_list)

    delete = commands.add_parser("delete", help="remove a document by id (or a unique id prefix)")
    delete.add_argument("doc_id")
    delete.set_defaults(run=_delete)

    reindex = commands.add_parser("reindex", help="chunk and embed every document again with "
                                                  "the live settings")
    reindex.set_defaults(run=_reindex)

    evaluate = commands.add_parser("eval", help="index a BEIR-format benchmark into the data "
                                                "dir and score retrieval with the live settings")
    evaluate.add_argument("--beir", type=Path, required=True,
                          help="folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(run=_eval)
    return parser


def _report(label, result) -> bool:
    """One line per file, as other tools parse it; True when the file failed."""
    if result.status == "indexed":
        print(f"{label}: indexed ({result.chunks} chunks)")
    elif result.status == "already indexed":
        print(f"{label}: already indexed")
    else:
        print(f"{label}: failed: {result.error}")
    for warning in result.warnings:
        print(f"{label}: warning: {warning}")
    return result.status == "failed"


def _ingest(rag, args) -> int:
    failed = 0
    for path in args.files:
        try:
            data = path.read_bytes()
        except OSError as error:
            print(f"{path}: failed: {path.name}: cannot read file: {error.strerror}")
            failed += 1
            continue
        failed += _report(path, rag.ingest_one(path.name, data))
    rag.sync_lexical()
    return 1 if failed else 0


def _reindex(rag, args) -> int:
    for difference in rag.index_mismatch():
        print(f"index differs: {difference}")
    failed = sum(_report(result.source, result) for result in rag.reindex_iter())
    if failed:
        print(f"re-index incomplete ({failed} failed): the index stays as it was", file=sys.stderr)
        return 1
    print(f"re-index complete: generation {rag.generation} is live")
    return 0


def _eval(rag, args) -> int:
    import time

    from rag import evaluation

    try:
        benchmark = evaluation.load_beir(args.beir, args.split)
    except (OSError, ValueError) as error:
        print(f"{args.beir}: cannot read the benchmark: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = evaluation.index(rag, benchmark, progress=_progress("indexed"))
    index_s = time.perf_counter() - started
    failed = [result for result in results if result.status == "failed"]
    for result in failed:
        print(f"{result.source}: failed: {result.error}", file=sys.stderr)
    scores = evaluation.evaluate(rag, benchmark, progress=_progress("queried"))
    scores["index_s"] = round(index_s, 2)
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"{args.beir.name} {args.split}: {len(benchmark.corpus)} documents, "
              f"{scores['queries']} queries, {scores['refused']} under the threshold")
        for name in (*evaluation.METRICS, "index_s", "query_s"):
            print(f"{name:>11}  {scores[name]:.4f}" if "@" in name else f"{name:>11}  {scores[name]}")
    return 1 if failed else 0


def _progress(verb: str):
    """Progress on stderr every 10%, so --json's stdout stays one object."""
    def report(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            print(f"{verb} {done}/{total}", file=sys.stderr, flush=True)
    return report


def _ask(rag, args) -> int:
    answer = rag.ask(args.question)
    if args.json:
        text = "".join(answer.deltas)
        print(json.dumps({"answer": text, "refused": answer.refused,
                          "sources": [_source(hit) for hit in answer.hits]}, ensure_ascii=False))
        return 0
    for delta in answer.deltas:
        print(delta, end="", flush=True)
    print()
    if answer.refused and answer.best_similarity is not None:
        print(f"(best similarity {answer.best_similarity:.2f} < threshold {answer.threshold:.2f})")
    for number, hit in enumerate(answer.hits, start=1):
        where = f"p. {hit.chunk.page}" if hit.chunk.page else (hit.chunk.heading or "")
        print(f"[{number}] {hit.chunk.source} {where} ({_scores(hit)})")
    return 0


def _scores(hit) -> str:
    named = (("similarity", hit.similarity), ("lexical", hit.lexical), ("fused", hit.fused),
             ("rerank", hit.rerank_score))
    return ", ".join(f"{name} {value:.3f}" for name, value in named if value is not None)


def _source(hit) -> dict:
    return {
        "source": hit.chunk.source,
        "page": hit.chunk.page,
        "heading": hit.chunk.heading,
        "chunk": hit.chunk.ordinal,
        "similarity": round(hit.similarity, 4),
        "lexical": None if hit.lexical is None else round(hit.lexical, 4),
        "fused": None if hit.fused is None else round(hit.fused, 4),
        "rerank_score": None if hit.rerank_score is None else round(hit.rerank_score, 4),
        "text": hit.chunk.text,
    }


def _list(rag, args) -> int:
    for info in rag.documents():
        print(f"{info.doc_id[:12]}  {info.source}  {info.pages} pages  {info.chunks} chunks  "
              f"{info.size_bytes} bytes  {info.added_at}")
    return 0


def _delete(rag, args) -> int:
    matches = [info for info in rag.documents() if info.doc_id.startswith(args.doc_id)]
    if len(matches) != 1:
        reason = "no document" if not matches else f"{len(matches)} documents"
        print(f"{reason} with id {args.doc_id}", file=sys.stderr)
        return 1
    rag.delete(matches[0].doc_id)
    print(f"deleted {matches[0].source} ({matches[0].doc_id[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
