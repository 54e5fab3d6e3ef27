"""Question latency: retrieval p50/p95, and time to first token with the embedded model."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import BENCH_DATA, percentiles

from rag.config import Settings
from rag.local_models import default_gguf
from rag.pipeline import RAG

ON_TOPIC = [
    "How does the trace compiler call C builtins through the foreign function interface?",
    "What is a trace tree and how are nested loops handled?",
    "What does the borrow checker prevent?",
    "How do you propagate errors with the question mark operator?",
    "Why can't you index into a String in Rust?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=200, help="retrieval latency samples")
    parser.add_argument("--answers", type=int, default=3, help="answers timed to first token")
    parser.add_argument("--gguf", type=Path, help="another GGUF than the default embedded model")
    args = parser.parse_args()

    squad = json.loads((BENCH_DATA / "squad/sample500/queries.json").read_text())
    questions = [item["question"] for item in squad["queries"]][: args.questions]
    files = [BENCH_DATA / "pdfs/pdfjs/tracemonkey.pdf",
             *sorted((BENCH_DATA / "docs/markdown").glob("*.md"))]

    app_settings = Settings()
    # The index is temporary; the joined model file is the app's own, so it is joined only once.
    gguf = args.gguf or default_gguf(app_settings.data_dir)
    with tempfile.TemporaryDirectory() as data_dir:
        settings = app_settings.model_copy(update={"data_dir": Path(data_dir), "llm_gguf": gguf})
        rag = RAG(settings)
        rag.ingest([(path.name, path.read_bytes()) for path in files])
        print(f"index: {len(files)} files, {rag.store.count()} chunks")

        rag.retrieve("warm up")
        timings = []
        for question in questions + ON_TOPIC:
            started = time.perf_counter()
            rag.retrieve(question)
            timings.append(time.perf_counter() - started)
        print(f"retrieval (embed + search + threshold + re-rank): {percentiles(timings)}")

        started = time.perf_counter()
        llm = rag.get_llm()
        getattr(llm, "load", lambda: None)()
        print(f"LLM: {llm.name}, load {time.perf_counter() - started:.1f} s")
        for question in ON_TOPIC[: args.answers]:
            started = time.perf_counter()
            answer = rag.ask(question)
            first, pieces = None, []
            for delta in answer.deltas:
                first = first or time.perf_counter() - started
                pieces.append(delta)
            total = time.perf_counter() - started
            print(f"time to first token {first:5.1f} s, answer {total:5.1f} s, "
                  f"{len(pieces)} deltas, {len(answer.hits)} sources "
                  f"({answer.prompt_tokens} prompt tokens)"
                  f"{' REFUSED' if answer.refused else ''}: {question}")


if __name__ == "__main__":
    main()
