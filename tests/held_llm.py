"""An HTTP proxy in front of the language model's server that lets a test decide when answers
move on, so a test of "while an answer streams" synchronises on events instead of the clock."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import urlsplit


def _has_content(line: bytes) -> bool:
    """A streamed chat chunk (`data: {...}`) that carries answer text."""
    if not line.startswith(b"data:"):
        return False
    try:
        chunk = json.loads(line[5:])
    except ValueError:
        return False
    return any((choice.get("delta") or {}).get("content") for choice in chunk.get("choices", []))


class HeldLLM:
    """Holds every request until `open()`: the test sees which questions reached the model and
    knows that all their answers are in progress together. With `pause_after_first_text`, each
    streamed response then stops after its first piece of text until `resume()`: the page shows
    part of an answer whose rest provably comes later."""

    HOLD_S = 300.0  # a guard: the test opens the gate as soon as it has looked

    def __init__(self, upstream: str, *, pause_after_first_text: bool = False) -> None:
        parts = urlsplit(upstream)
        self._upstream = f"{parts.scheme}://{parts.netloc}"
        self._held: list[str] = []
        self._open = False
        self._paused = pause_after_first_text
        self._first_texts = 0
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}{parts.path}"

    def __enter__(self) -> Self:
        threading.Thread(target=self._server.serve_forever, name="held llm", daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.open()
        self.resume()
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, questions: Sequence[str], timeout_s: float) -> bool:
        """Until a held request carries each of `questions`."""
        with self._changed:
            return self._changed.wait_for(
                lambda: all(any(q in body for body in self._held) for q in questions), timeout_s)

    def wait_for_first_text(self, timeout_s: float) -> bool:
        """Until a response has passed on its first piece of text (and, paused, stopped there)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._first_texts > 0, timeout_s)

    def held(self) -> list[str]:
        with self._changed:
            return list(self._held)

    def open(self) -> None:
        with self._changed:
            self._open = True
            self._changed.notify_all()

    def resume(self) -> None:
        with self._changed:
            self._paused = False
            self._changed.notify_all()

    def _hold(self, body: bytes) -> None:
        with self._changed:
            self._held.append(body.decode("utf-8", errors="replace"))
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._open, self.HOLD_S)

    def _first_text_sent(self) -> None:
        with self._changed:
            self._first_texts += 1
            self._changed.notify_all()
            self._changed.wait_for(lambda: not self._paused, self.HOLD_S)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: the response ends when the connection closes, so it streams unmodified
            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                gate._hold(body)
                self._forward(body)

            def _forward(self, body: bytes | None) -> None:
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "accept", "authorization")}
                request = urllib.request.Request(gate._upstream + self.path, data=body,
                                                 headers=headers, method=self.command)
                try:
                    response = urllib.request.urlopen(request, timeout=gate.HOLD_S)
                except urllib.error.HTTPError as error:
                    response = error
                with response:
                    self.send_response(response.status)
                    for key, value in response.headers.items():
                        if key.lower() not in ("transfer-encoding", "connection",
                                               "content-length", "date", "server"):
                            self.send_header(key, value)
                    self.end_headers()
                    text_seen = text_sent = False
                    for line in response:  # server-sent events arrive a line at a time
                        self.wfile.write(line)
                        self.wfile.flush()
                        text_seen = text_seen or _has_content(line)
                        if text_seen and not text_sent and not line.strip():  # the event's end
                            text_sent = True
                            gate._first_text_sent()

            def log_message(self, *args: object) -> None:
                """Quiet: the test reports what it needs."""

        return Handler
