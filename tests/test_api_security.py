"""Hostile requests against the real API server (uvicorn on 127.0.0.1 in a thread, real SQLite
and Chroma files, the session's embedder): file names that try to leave the data dir, HTML in
names and text, oversized and truncated bodies, a PDF and an XML bomb, a flood of requests
without a token, a reader reaching for another's conversation. The language model is an
unused port: nothing here needs an answer, and a question fails fast with a 503."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from rag.accounts import Accounts
from rag.api.app import create_app
from rag.config import Settings
from rag.pipeline import RAG
from tests.conftest import REPO
from tests.processes import cli_env, free_port
from tests.test_api import assert_error, bearer, events, serving

LOAD_TIMEOUT_S = 20.0  # the loader's time limit in this module's engine
WAIT_GUARD_S = 120.0  # on top of it: queueing, embedding a small file, a slow machine


@dataclass(frozen=True)
class Server:
    url: str
    tokens: dict[str, str]
    engine: RAG
    accounts: Accounts
    data_dir: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder) -> Iterator[Server]:
    """An admin and two readers; the data dir has a parent of its own, watched for escapes."""
    data_dir = tmp_path_factory.mktemp("api-security") / "data"
    settings = Settings(data_dir=data_dir, load_timeout_s=LOAD_TIMEOUT_S,
                        llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_timeout_s=5)
    engine, accounts = RAG(settings, embedder=embedder), Accounts.in_data_dir(data_dir)
    tokens = {name: accounts.tokens.create(name, "admin" if name == "admin" else "reader")
              for name in ("admin", "ann", "bob")}
    with serving(create_app(engine, accounts, upload_limit_mb=1)) as url:
        yield Server(url, tokens, engine, accounts, data_dir)


def _settled(server: Server) -> None:
    assert server.engine.queue.wait_idle(timeout=LOAD_TIMEOUT_S + WAIT_GUARD_S), \
        "the ingest queue did not finish"


def _healthy(url: str) -> None:
    response = httpx.get(f"{url}/v1/health", timeout=30)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def _multipart(filename: bytes, content: bytes, *, closing: bool = True) -> bytes:
    """One part named "files", its filename sent byte for byte (a client library would escape
    or refuse some of them)."""
    body = (b'--b\r\nContent-Disposition: form-data; name="files"; filename="' + filename
            + b'"\r\nContent-Type: text/markdown\r\n\r\n' + content + b"\r\n")
    return body + b"--b--\r\n" if closing else body


MULTIPART = {"content-type": "multipart/form-data; boundary=b"}


# --- file names that point elsewhere ----------------------------------------------------------

# name sent -> the name it is kept and listed under (the upload itself is kept under its hash)
TRAVERSALS = {
    "parent-dirs": (b"../../x.md", "x.md"),
    "absolute": (b"/etc/passwd.md", "passwd.md"),
    "windows-parent-dirs": (b"..\\..\\x.md", "x.md"),
    "windows-drive": (b"C:\\Windows\\x.md", "x.md"),
    # the NUL is dropped, not a place to cut the name: a text file, parsed as one
    "nul-byte": (b"x.md\x00.txt", "x.md.txt"),
    "nul-then-parent-dirs": (b"a\x00/../../x.md", "x.md"),
}


def _outside(data_dir: Path) -> set[Path]:
    """What the data dir's parent and grandparent hold, but the data dir."""
    return {path for folder in (data_dir.parent, data_dir.parent.parent)
            for path in folder.iterdir() if path != data_dir}


@pytest.mark.parametrize(("filename", "kept"), TRAVERSALS.values(), ids=TRAVERSALS.keys())
def test_an_upload_name_cannot_write_outside_the_data_dir(server, filename, kept):
    before = _outside(server.data_dir)
    assert not Path("/etc/passwd.md").exists()
    content = b"# Traversal\n\nThe upload named %r must stay in the data dir." % filename
    response = httpx.post(f"{server.url}/v1/documents", content=_multipart(filename, content),
                          headers={**bearer(server.tokens["admin"]), **MULTIPART})
    if response.status_code == 202:
        [accepted] = response.json()["files"]
        source = accepted["job"]["source"]
        _settled(server)
        job = httpx.get(f"{server.url}/v1/jobs/{accepted['job']['id']}",
                        headers=bearer(server.tokens["admin"])).json()
        assert job["status"] == "indexed", job
        listed = httpx.get(f"{server.url}/v1/documents/{job['document_id']}",
                           headers=bearer(server.tokens["ann"])).json()
        assert listed["source"] == source == kept
        assert not {"/", "\\", "\x00", ":"} & set(source), source
    else:  # refused: JSON that names the cause
        assert response.status_code in (400, 415, 422), response.text
        assert response.headers["content-type"] == "application/json"
        assert "name" in response.json()["error"]["message"]
    assert _outside(server.data_dir) == before, "a file appeared beside the data dir"
    assert not Path("/etc/passwd.md").exists() and not Path("/x.md").exists()
    assert not (Path.cwd().parent / "x.md").exists() and not (Path.cwd() / "x.md").exists()
    files = [path for path in server.data_dir.rglob("*") if path.is_file()]
    assert all(path.resolve().is_relative_to(server.data_dir.resolve()) for path in files)
    assert not any(path.name.endswith(".md") for path in files), "files under its hash only"


# --- HTML and script: data, never a page ------------------------------------------------------

SCRIPT_NAME = "<script>alert(1)</script>.md"
SCRIPT_TEXT = (b"# <script>alert(2)</script> Lighthouse log\n\n"
               b"The lighthouse keeper counts forty ships at dawn <img src=x onerror=alert(3)> "
               b"and writes the count into the lighthouse log book.\n")


def _assert_not_html(response: httpx.Response, *types: str) -> None:
    kind = response.headers.get("content-type", "")
    assert kind.split(";")[0].strip() in types, (response.request.url, kind)
    assert "text/html" not in kind


def test_html_in_a_name_and_a_text_comes_back_as_json_data(server):
    admin, ann = bearer(server.tokens["admin"]), bearer(server.tokens["ann"])
    url, answers = server.url, []
    uploaded = httpx.post(f"{url}/v1/documents", headers=admin,
                          files=[("files", (SCRIPT_NAME, SCRIPT_TEXT, "text/html"))])
    answers.append(uploaded)
    assert uploaded.status_code == 202, uploaded.text
    [accepted] = uploaded.json()["files"]
    assert accepted["file"] == SCRIPT_NAME, "the name as sent, as a JSON string"
    _settled(server)
    job_id, doc_id = accepted["job"]["id"], accepted["job"]["document_id"]
    job = httpx.get(f"{url}/v1/jobs/{job_id}", headers=admin)
    assert job.json()["status"] == "indexed", job.text
    # "/" ends a folder name, so the kept name is what follows the last one; as data all along
    source = accepted["job"]["source"]
    assert source == "script>.md"
    answers += [job, httpx.get(f"{url}/v1/jobs", headers=admin)]
    listed = httpx.get(f"{url}/v1/documents", headers=ann)
    assert source in {found["source"] for found in listed.json()}
    answers += [listed, httpx.get(f"{url}/v1/documents/{doc_id}", headers=ann)]
    # the same name in a path, a query and a header: errors are JSON too
    answers += [httpx.get(f"{url}/v1/{SCRIPT_NAME}", headers=ann),
                httpx.get(f"{url}/v1/documents/{SCRIPT_NAME}", headers=ann),
                httpx.get(f"{url}/v1/conversations/{SCRIPT_NAME}", headers=ann),
                httpx.get(f"{url}/v1/documents?q={SCRIPT_NAME}",
                          headers={"Authorization": f"Bearer {SCRIPT_NAME}"}),
                httpx.post(f"{url}/v1/documents", headers=admin,
                           files=[("files", ("<b>x</b>.html.exe", b"<script>"))])]
    question = "How many ships does the lighthouse keeper count at dawn?"
    with httpx.stream("POST", f"{url}/v1/ask", headers=ann, timeout=120,
                      json={"question": question}) as streamed:
        _assert_not_html(streamed, "text/event-stream")
        received = events(streamed)
    found = json.loads(received[0][1])
    assert received[0][0] == "sources" and found["sources"], received
    assert found["sources"][0]["source"] == source
    assert "<script>alert(2)</script>" in found["sources"][0]["heading"] + \
        found["sources"][0]["text"], "the text as it is, neither run nor escaped twice"
    done = json.loads(received[-1][1])
    assert received[-1][0] == "done" and done["error"]["code"] == "llm_unavailable"
    answers += [httpx.post(f"{url}/v1/ask", headers=ann, timeout=120,
                           json={"question": question, "stream": False}),
                httpx.post(f"{url}/v1/chat/completions", headers=ann, timeout=120,
                           json={"messages": [{"role": "user", "content": question}]}),
                httpx.get(f"{url}/v1/conversations", headers=ann),
                httpx.get(f"{url}/v1/conversations/{done['conversation']}", headers=ann)]
    for response in answers:
        _assert_not_html(response, "application/json")
        json.loads(response.text)
    assert [response.status_code for response in answers] == [
        202, 200, 200, 200, 200, 404, 404, 404, 401, 415, 503, 503, 200, 200]


# --- oversized and truncated bodies -----------------------------------------------------------

def _no_job_named(server: Server, *names: str) -> None:
    assert not {job.source for job in server.engine.queue.jobs.jobs()} & set(names)


def test_an_upload_over_the_limit_is_a_json_413_and_the_server_goes_on(server):
    admin = bearer(server.tokens["admin"])
    big = b"# Big\n\n" + b"word " * (2 * 1024 * 1024 // 5)  # 2 MB: the server's limit is 1 MB
    message = assert_error(httpx.post(f"{server.url}/v1/documents", headers=admin,
                                      files=[("files", ("big-one.md", big))]), 413, "too_large")
    assert "1 MB" in message
    # within the request's allowance (the file's limit plus room for the multipart framing),
    # yet over the file's: refused by the route, with the file's name
    just_over = b"x" * (1024 * 1024 + 10)
    message = assert_error(httpx.post(f"{server.url}/v1/documents", headers=admin,
                                      files=[("files", ("big-two.md", just_over))]), 413,
                           "too_large")
    assert message.startswith("big-two.md: over the 1 MB limit")
    _healthy(server.url)
    _no_job_named(server, "big-one.md", "big-two.md")


def test_a_body_shorter_than_its_content_length_then_a_closed_connection(server):
    """The client announces more than it sends and goes away: nothing is queued, nothing
    hangs. Half closed (it still listens) it gets no 2xx: nothing, or an error."""
    host, port = server.url.removeprefix("http://").split(":")
    body = _multipart(b"cut-short.md", b"# Cut\n\n" + b"words " * 1000)
    head = (b"POST /v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + server.tokens["admin"].encode() + b"\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: %d\r\n\r\n" % (len(body) + 4096))
    for half_close in (False, True):
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(head + body[: len(body) // 2])
            if not half_close:
                continue
            connection.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := connection.recv(65536):
                received += chunk
            assert received == b"" or received.startswith(b"HTTP/1.1 4"), received[:200]
    _healthy(server.url)
    _settled(server)
    _no_job_named(server, "cut-short.md")


def test_a_multipart_body_without_its_closing_boundary_is_a_json_4xx(server):
    admin = bearer(server.tokens["admin"])
    whole = _multipart(b"no-end.md", b"# No end\n\nThe closing boundary never comes.",
                       closing=False)
    for body in (whole, whole[:-2], whole[: len(whole) - 20]):
        declared = httpx.post(f"{server.url}/v1/documents", content=body,
                              headers={**admin, **MULTIPART})
        assert declared.status_code in (400, 413, 422), declared.text
        assert_error(declared, declared.status_code, declared.json()["error"]["code"])
        chunked = httpx.post(f"{server.url}/v1/documents", content=iter([body]),
                             headers={**admin, **MULTIPART})
        assert "content-length" not in chunked.request.headers
        assert chunked.status_code in (400, 413, 422), chunked.text
        assert_error(chunked, chunked.status_code, chunked.json()["error"]["code"])
    _healthy(server.url)
    _settled(server)
    _no_job_named(server, "no-end.md")


# --- bombs ------------------------------------------------------------------------------------

def _pdf(*objects: bytes) -> bytes:
    """A well-formed PDF of these objects (1 0 obj first), with a correct xref table."""
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)


def _one_page(contents: bytes, *extra: bytes) -> bytes:
    return _pdf(b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
                contents, *extra)


def flate_bomb() -> bytes:
    """A page whose 300 KB content stream inflates to 200 MB of drawing operators."""
    stream = zlib.compress(b"0 0 m\n" * (200 * 1024 * 1024 // 6), 9)
    return _one_page(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream
                     + b"\nendstream")


def deeply_nested() -> bytes:
    """An array nested 100,000 deep hanging from the page (a recursive parser's stack)."""
    text = b"BT 72 712 Td (Deep) Tj ET"
    return _one_page(b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
                     b"[" * 100_000 + b"]" * 100_000)


BOMBS = {
    # from the benchmark: /Pages tree with a circular reference (pdf.js's test file)
    "Pages-tree-refs.pdf": (lambda data: (data / "pdfs/pdfjs/Pages-tree-refs.pdf").read_bytes(),
                            "unreadable PDF: "),
    # "billion laughs" in xl/sharedStrings.xml, about 460 MB expanded
    "poc-xmlbomb.xlsx": (lambda data: (data / "office/xlsx/poc-xmlbomb.xlsx").read_bytes(),
                         "unsafe XML in xl/sharedStrings.xml"),
    # made here: the benchmark has no decompression bomb and no deeply nested PDF
    "flate-bomb.pdf": (lambda data: flate_bomb(), ""),
    "deeply-nested.pdf": (lambda data: deeply_nested(), ""),
}


@pytest.mark.parametrize("name", BOMBS)
def test_a_bomb_ends_as_a_failed_job_with_its_name_and_cause(server, bench_data, name):
    read, cause = BOMBS[name]
    admin = bearer(server.tokens["admin"])
    uploaded = httpx.post(f"{server.url}/v1/documents", headers=admin,
                          files=[("files", (name, read(bench_data)))])
    assert uploaded.status_code == 202, uploaded.text
    [accepted] = uploaded.json()["files"]
    _settled(server)
    job = httpx.get(f"{server.url}/v1/jobs/{accepted['job']['id']}", headers=admin).json()
    assert job["status"] == "failed", job
    assert job["error"].startswith(f"{name}: {cause}"), job["error"]
    assert len(job["error"]) > len(f"{name}: ") + 5, "a cause follows the name"
    assert "Traceback" not in job["error"]
    _healthy(server.url)
    assert accepted["job"]["document_id"] not in {
        found["id"] for found in httpx.get(f"{server.url}/v1/documents", headers=admin).json()}


# --- a flood without a token ------------------------------------------------------------------

FLOOD = 10_000
FLOOD_GUARD_S = 900  # a hung server fails the test instead of the whole run


def test_ten_thousand_requests_without_a_token_all_get_the_json_401(server):
    """Sent from a process of its own (tests/flood.py, 16 keep-alive connections), so client
    and server do not take turns on one interpreter."""
    flood = subprocess.run([sys.executable, "-m", "tests.flood", server.url, str(FLOOD)],
                           capture_output=True, text=True, cwd=REPO, env=cli_env(),
                           timeout=FLOOD_GUARD_S, check=True)
    seen = json.loads(flood.stdout)
    print(f"\n{FLOOD} requests without a token: {seen}")
    assert seen == {"401 unauthorized": FLOOD}
    _healthy(server.url)
    assert httpx.get(f"{server.url}/v1/conversations",
                     headers=bearer(server.tokens["ann"])).status_code == 200


# --- another reader's conversation ------------------------------------------------------------

def test_a_reader_cannot_reach_another_readers_or_an_unowned_conversation(server):
    """What test_api.py's test_a_reader_sees_only_their_own_conversations leaves out: a
    question that asks for one JSON answer, a conversation no one owns (asked in the app
    before accounts existed), ids that try to leave their place."""
    url, engine, accounts = server.url, server.engine, server.accounts
    ann = accounts.tokens.verify(server.tokens["ann"])
    anns = engine.conversations.create("Ann's secret plans")
    accounts.owners.claim(anns.id, ann.user_id)
    unowned = engine.conversations.create("from the app, before accounts")
    bob = bearer(server.tokens["bob"])
    for target in (anns, unowned):
        path = f"{url}/v1/conversations/{target.id}"
        assert "no conversation" in assert_error(httpx.get(path, headers=bob), 404,
                                                 "not_found")
        assert_error(httpx.delete(path, headers=bob), 404, "not_found")
        for stream in (False, True):
            asked = httpx.post(f"{url}/v1/ask", headers=bob, timeout=60, json={
                "question": "what was said?", "conversation": target.id, "stream": stream})
            assert "secret" not in assert_error(asked, 404, "not_found")
    # (httpx resolves a literal ".." before sending: these reach the server as written)
    for probe in ("%2e%2e", "%2e%2e%2fconversations", "%2e%2e%2f" + anns.id, anns.id + "/",
                  "*", "%25", anns.id.upper()):
        response = httpx.get(f"{url}/v1/conversations/{probe}", headers=bob)
        assert response.status_code in (404, 307), (probe, response.text)
        assert "secret" not in response.text
    assert engine.conversations.get(anns.id).title == "Ann's secret plans"
    assert engine.conversations.get(unowned.id) is not None
    assert engine.conversations.messages(anns.id) == []
    assert engine.conversations.messages(unowned.id) == []
    assert accounts.owners.owner(anns.id) == ann.user_id
    assert httpx.get(f"{url}/v1/conversations/{anns.id}",
                     headers=bearer(server.tokens["ann"])).json()["title"] == "Ann's secret plans"


# --- the served spec, fuzzed ------------------------------------------------------------------

FUZZ_EXAMPLES = 15  # per operation: the whole spec in well under a minute


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory, embedder) -> Iterator[tuple[str, str]]:
    """A server of its own: the fuzzer deletes and uploads at random."""
    data_dir = tmp_path_factory.mktemp("api-fuzz")
    engine = RAG(Settings(data_dir=data_dir, load_timeout_s=LOAD_TIMEOUT_S), embedder=embedder)
    accounts = Accounts.in_data_dir(data_dir)
    token = accounts.tokens.create("admin", "admin")
    with serving(create_app(engine, accounts, upload_limit_mb=1)) as url:
        yield url, token
        _settled(Server(url, {}, engine, accounts, data_dir))


# /v1/ask and /v1/chat/completions answer with the language model: without one they are 503s.
# (schemathesis.pytest.from_fixture fails on pytest 9, which has no Item._nodeid: each
# operation's strategy runs under hypothesis here instead.)
NEEDS_THE_MODEL = r"^/v1/(ask|chat/completions)$"


def test_the_served_spec_fuzzed_with_an_admin_token_gives_no_5xx(fuzz_target):
    url, token = fuzz_target
    spec = schemathesis.openapi.from_url(f"{url}/openapi.json").exclude(
        path_regex=NEEDS_THE_MODEL)
    sent: Counter = Counter()
    for found in spec.get_all_operations():
        operation = found.ok()

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def fuzz(case) -> None:
            sent[f"{case.method} {case.path}"] += 1
            case.call_and_validate(base_url=url, headers=bearer(token), timeout=60,
                                   checks=[not_a_server_error])

        fuzz()
    for beyond in (2**63, -(2**63) - 1, 10**30):  # what the fuzzer found: a 500 before the fix
        assert_error(httpx.get(f"{url}/v1/jobs/{beyond}", headers=bearer(token)), 404,
                     "not_found")
    print(f"\nfuzzed {len(sent)} operations, {sum(sent.values())} requests: {dict(sent)}")
    assert len(sent) >= 9 and all(sent.values())
    _healthy(url)
