"""The HTTP API under load: `POST /v1/ask` over server-sent events from 1, 4 and 16 concurrent
clients on 127.0.0.1, against `python -m rag serve` in a process of its own on the embedded
engine; and what the API adds over calling the engine directly.

The requests are retrieval-only: questions about nothing in the index, which the threshold
refuses before any language model is called, so the figures are the API's and retrieval's, not
a CPU's reading speed. Each request: embed, hybrid search, threshold, `event: sources`, the
stored refusal, `event: done`. Target: 0 errors, time to sources p95 <= 200 ms at 16 clients.

    .venv/bin/python bench/api.py [--files 3] [--requests 320]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from common import BENCH_DATA, REPO
from ingest import corpus

from rag.config import Settings
from rag.pipeline import RAG
from tests.processes import cli_env, free_port, running_server

QUESTIONS = (
    "What is a good recipe for chocolate chip cookies?",
    "Who won the football world cup in 1954?",
    "How do I repot an orchid without damaging its roots?",
    "What is the best season to visit Patagonia?",
    "How long should pasta boil before it is al dente?",
    "Which bird migrates the farthest every year?",
    "How many moons does Neptune have?",
    "What is the plot of Moby Dick?",
)
CLIENTS = (1, 4, 16)
SERVER_START_S = 180


def build_index(data_dir: Path, files: int) -> tuple[int, list[float]]:
    """Index the first files of the text corpus; then time the engine's own path to the
    sources (a conversation, the ask, the wait for retrieval) in this process. Returns the chunk
    count and those seconds."""
    rag = RAG(Settings(data_dir=data_dir))
    results = rag.ingest([(path.name, path.read_bytes()) for path in corpus()[:files]])
    assert all(result.status == "indexed" for result in results), results
    rag.sync_lexical()
    direct = []
    for question in QUESTIONS * 4:
        started = time.perf_counter()
        conversation = rag.conversations.create()
        job = rag.chat.ask(conversation.id, question)
        job.wait_for_sources()
        direct.append(time.perf_counter() - started)
        job.wait()
    chunks = sum(info.chunks for info in rag.documents())
    return chunks, direct[len(QUESTIONS):]  # the first round warms the caches


async def one_client(client: httpx.AsyncClient, requests: int, offset: int,
                     sources_s: list[float], totals_s: list[float], errors: list[str]) -> None:
    for number in range(requests):
        question = QUESTIONS[(offset + number) % len(QUESTIONS)]
        started = time.perf_counter()
        seen_sources = done = None
        try:
            async with client.stream("POST", "/v1/ask", json={"question": question}) as answer:
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code} {await answer.aread()!r}")
                    continue
                async for line in answer.aiter_lines():
                    if line == "event: sources" and seen_sources is None:
                        seen_sources = time.perf_counter() - started
                    elif line == "event: done":
                        done = True
        except httpx.HTTPError as error:
            errors.append(repr(error))
            continue
        if seen_sources is None or not done:
            errors.append(f"{question!r}: sources {seen_sources}, done {done}")
            continue
        sources_s.append(seen_sources)
        totals_s.append(time.perf_counter() - started)


async def load(url: str, token: str, clients: int, requests: int) -> dict:
    sources_s: list[float] = []
    totals_s: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        started = time.perf_counter()
        await asyncio.gather(*(one_client(client, requests // clients, index, sources_s, totals_s,
                                          errors) for index in range(clients)))
        seconds = time.perf_counter() - started
    return {"clients": clients, "requests": len(sources_s) + len(errors),
            "rate": (len(sources_s) + len(errors)) / seconds, "errors": errors,
            "sources": np.percentile(sources_s, [50, 95]) * 1000 if sources_s else [np.nan] * 2,
            "total": np.percentile(totals_s, [50, 95]) * 1000 if totals_s else [np.nan] * 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=3, help="text corpus files to index")
    parser.add_argument("--requests", type=int, default=320, help=(
        "asks per concurrency level: 20 per client at 16 clients, so p95 is not one slow ask"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        chunks, direct = build_index(data_dir, args.files)
        env = cli_env({"RAG_DATA_DIR": str(data_dir)})
        token = subprocess.run([sys.executable, "-m", "rag", "tokens", "create", "bench",
                                "--role", "reader"], capture_output=True, text=True, check=True,
                               cwd=REPO, env=env).stdout.strip()
        port = free_port()
        with running_server([sys.executable, "-m", "rag", "serve", "--port", str(port)],
                            ready_url=f"http://127.0.0.1:{port}/v1/health",
                            log=Path(folder) / "serve.log", timeout_s=SERVER_START_S, cwd=REPO,
                            env=env):
            url = f"http://127.0.0.1:{port}"
            asyncio.run(load(url, token, 1, len(QUESTIONS)))  # warm-up: model, caches
            rows = [asyncio.run(load(url, token, clients, args.requests)) for clients in CLIENTS]
    print(f"index: {args.files} files of the text corpus ({BENCH_DATA.name}), {chunks} chunks; "
          f"questions refused by the threshold (retrieval only), {len(QUESTIONS)} distinct\n")
    print("| clients | requests | requests/s | errors | time to sources p50 / p95 ms | "
          "whole answer p50 / p95 ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['clients']} | {row['requests']} | {row['rate']:.1f} | {len(row['errors'])} | "
              f"{row['sources'][0]:.0f} / {row['sources'][1]:.0f} | "
              f"{row['total'][0]:.0f} / {row['total'][1]:.0f} |")
    for row in rows:
        for error in row["errors"][:5]:
            print(f"  error at {row['clients']} clients: {error}")
    direct_p50 = np.percentile(direct, 50) * 1000
    print(f"\nengine called directly (same questions, in process): time to sources p50 "
          f"{direct_p50:.0f} ms; over the API at 1 client: p50 {rows[0]['sources'][0]:.0f} ms, "
          f"so the API adds {rows[0]['sources'][0] - direct_p50:.0f} ms")
    print("(target: 0 errors, time to sources p95 <= 200 ms at 16 clients)")


if __name__ == "__main__":
    main()
