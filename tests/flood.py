"""Many HTTP/1.1 requests over a few keep-alive connections, from a process of its own so the
server under test has the test process to itself: `python -m tests.flood URL COUNT`. Prints one
JSON object: how many answers of each (status, error code or content type) came back."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from urllib.parse import urlsplit

CONNECTIONS = 16
ROUTES = (("GET", "/v1/documents"), ("GET", "/v1/jobs"), ("POST", "/v1/ask"),
          ("GET", "/v1/conversations/x"), ("POST", "/v1/chat/completions"))
BODY = b'{"question": "q"}'


def request(host: str, method: str, path: str) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n"
    return (head + "\r\n").encode() + (BODY if method == "POST" else b"")


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def outcome(status: int, headers: dict[str, str], body: bytes) -> str:
    kind = headers.get("content-type", "")
    if kind == "application/json":
        return f"{status} {json.loads(body)['error']['code']}"
    return f"{status} {kind}"


async def flood(url: str, count: int) -> Counter:
    parts = urlsplit(url)
    seen: Counter = Counter()
    numbers = iter(range(count))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for number in numbers:
                method, path = ROUTES[number % len(ROUTES)]
                writer.write(request(parts.netloc, method, path))
                seen[outcome(*await _answer(reader))] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(flood(sys.argv[1], int(sys.argv[2])))))
