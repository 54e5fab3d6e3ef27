"""Command line: python -m rag [--data-dir DIR] ingest|ask|list|delete|reindex|eval|conversations|export,
serve (the HTTP API) and tokens|users (accounts) ..."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError

from rag.accounts_cli import add_account_commands
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
    if not args.engine:  # tokens and users: no index to open, no model to load
        from rag.accounts import Accounts

        return args.run(Accounts.in_data_dir(settings.data_dir), args)
    from rag.pipeline import RAG  # after parsing, so --help answers without loading a model

    return args.run(RAG(settings), args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag", description=__doc__)
    parser.add_argument("--data-dir", type=Path, help="index folder (default: RAG_DATA_DIR or ./data)")
    parser.set_defaults(engine=True)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="index files (PDF, Office, CSV, EPUB, images, "
                                 "Markdown, HTML, text)")
    ingest.add_argument("files", nargs="+", type=Path)
    ingest.add_argument("--password", help="opens the encrypted PDFs among the files")
    ingest.set_defaults(run=_ingest)

    ask = commands.add_parser("ask", help="answer a question from the indexed documents")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.add_argument("--conversation", metavar="NAME",
                     help="continue (or start) the stored conversation NAME (a name or id)")
    ask.add_argument("--documents", metavar="ID_OR_NAME,...",
                     help="search only these documents (ids, id prefixes or file names)")
    ask.set_defaults(run=_ask)

    conversations = commands.add_parser("conversations", help="list stored conversations")
    conversations.set_defaults(run=_conversations)

    export = commands.add_parser("export", help="print a conversation as Markdown")
    export.add_argument("conversation", metavar="NAME", help="its name or id")
    export.set_defaults(run=_export)

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
    serve = commands.add_parser("serve", help="the HTTP API on RAG_HOST:RAG_PORT (default "
                                "127.0.0.1:8000); beyond loopback every request needs a token")
    serve.add_argument("--host", help="listen address (default: RAG_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: RAG_PORT or 8000)")
    serve.set_defaults(run=_serve)
    add_account_commands(commands)
    return parser


def _serve(rag, args) -> int:
    import uvicorn

    from rag.accounts import Accounts, is_loopback
    from rag.api.app import create_app
    from rag.api.warm_start import warm_start

    host, port = args.host or rag.settings.host, args.port or rag.settings.port
    accounts = Accounts.in_data_dir(rag.settings.data_dir)
    if not is_loopback(host) and not accounts.tokens.exist():
        print(f"serving on {host}: no token exists yet, so every request will get 401; create "
              "one with `python -m rag tokens create NAME`", file=sys.stderr)
    app = create_app(rag, accounts, loopback_only=is_loopback(host))
    warm_start(rag)
    uvicorn.run(app, host=host, port=port, log_level="info")
    return 0


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
        failed += _report(path, rag.ingest_one(path.name, data, args.password))
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
    try:
        documents = _resolve_documents(rag, args.documents) if args.documents else ()
    except LookupError as error:
        print(error, file=sys.stderr)
        return 2
    if args.conversation:
        return _ask_in_conversation(rag, args, documents)
    from rag.chat_service import finish

    if args.json:
        _load_models(rag)
        clock = _Clock()
        answer = rag.ask(args.question, documents=documents)
        clock.retrieved()
        text = "".join(clock.follow(answer.deltas))
        refused = answer.withheld
        final = finish(text, answer.hits, rag.embedder, refused)
        print(json.dumps({**_answer_json(final.text, refused, answer.hits, answer.searched,
                                         final.cited),
                          **_measures(clock, answer.prompt_tokens, refused)},
                         ensure_ascii=False))
        return 0
    answer = rag.ask(args.question, documents=documents)
    for delta in answer.deltas:
        print(delta, end="", flush=True)
    print()
    if answer.refusal_note:
        print(f"({answer.refusal_note})")
    _print_sources(answer.hits, ())
    return 0


def _ask_in_conversation(rag, args, documents) -> int:
    """The same worker and store as the app: the exchange is saved, and the next process's
    follow-up is searched with it."""
    store = rag.conversations
    conversation = store.find(args.conversation) or store.create(args.conversation, documents)
    if args.json:
        _load_models(rag)
        chat = rag.chat  # its worker, started before the clock
        clock = _Clock()
        job = chat.ask(conversation.id, args.question, documents=documents or None)
        job.wait_for_sources()  # the worker's rag.ask returned: the search is done
        clock.retrieved()
        for _ in clock.follow(job.follow()):
            pass
    else:
        job = rag.chat.ask(conversation.id, args.question, documents=documents or None)
        for delta in job.follow():
            print(delta, end="", flush=True)
        print()
    message = next(m for m in store.messages(conversation.id) if m.id == job.message_id)
    if args.json:
        refused = message.status == "refused"  # by the threshold or declined by the model
        print(json.dumps({**_answer_json(message.content, refused, message.sources,
                                         message.searched, message.cited),
                          "conversation": conversation.id,
                          **_measures(clock, message.meta.get("prompt_tokens"), refused)},
                         ensure_ascii=False))
        return 0
    if message.note:
        print(f"({message.note})")
    if message.searched and message.searched != args.question:
        print(f"(searched as: {message.searched})")
    _print_sources(message.sources, message.cited)
    return 0


def _load_models(rag) -> None:
    """The one-time loads (the embedded language model, the embedder), before any clock starts:
    the timings measure answering a question, not starting the process."""
    rag.prepare_llm()
    rag.embedder  # noqa: B018  (the property loads the model)


class _Clock:
    """Seconds since the question was handed to the engine, as `--json` reports them."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.retrieval: float | None = None
        self.first_token: float | None = None
        self.end: float | None = None

    def retrieved(self) -> None:
        self.retrieval = time.perf_counter() - self.start

    def follow(self, deltas: Iterable[str]) -> Iterator[str]:
        """Pass the answer's text through, noting its first non-empty piece and its end."""
        for delta in deltas:
            if delta and self.first_token is None:
                self.first_token = time.perf_counter() - self.start
            yield delta
        self.end = time.perf_counter() - self.start


def _measures(clock: _Clock, prompt_tokens: int | None, refused: bool) -> dict:
    """`timings` and `prompt_tokens` of `ask --json`. No first token for a refusal, by the
    threshold (no model ran) or declined by the model: that text is not the model answering."""
    first_token = None if refused else clock.first_token
    return {
        "timings": {"retrieval_s": round(clock.retrieval, 3),
                    "first_token_s": None if first_token is None else round(first_token, 3),
                    "total_s": round(clock.end, 3)},
        "prompt_tokens": prompt_tokens,
    }


def _answer_json(text, refused, hits, searched, cited) -> dict:
    return {"answer": text, "refused": refused, "sources": [_source(hit) for hit in hits],
            "searched": searched, "cited": list(cited)}


def _print_sources(hits, cited) -> None:
    for number, hit in enumerate(hits, start=1):
        where = f"p. {hit.chunk.page}" if hit.chunk.page else (hit.chunk.heading or "")
        mark = " cited" if number in cited else ""
        print(f"[{number}] {hit.chunk.source} {where} ({_scores(hit)}){mark}")


def _resolve_documents(rag, names: str) -> tuple[str, ...]:
    """Ids, unique id prefixes or exact file names; an unknown one is an error, not ignored."""
    listed = rag.documents()
    resolved = []
    for name in filter(None, (part.strip() for part in names.split(","))):
        matches = [info for info in listed if info.source == name] or [
            info for info in listed if info.doc_id.startswith(name)]
        if len(matches) != 1:
            reason = "no document" if not matches else f"{len(matches)} documents"
            raise LookupError(f"{reason} named or with id {name}")
        resolved.append(matches[0].doc_id)
    return tuple(resolved)


def _conversations(rag, args) -> int:
    for conversation in rag.conversations.list():
        count = len(rag.conversations.messages(conversation.id)) // 2
        print(f"{conversation.id[:12]}  {conversation.updated_at}  {count} questions  "
              f"{conversation.title}")
    return 0


def _export(rag, args) -> int:
    from rag.conversation_export import to_markdown

    conversation = rag.conversations.find(args.conversation)
    if conversation is None:
        print(f"no conversation named or with id {args.conversation}", file=sys.stderr)
        return 1
    print(to_markdown(conversation, rag.conversations.messages(conversation.id)))
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
