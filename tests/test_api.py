"""The HTTP API as clients use it: a real uvicorn server on 127.0.0.1 (in a thread of this
process, so it shares the session's embedder), httpx and OpenAI's client, real SQLite files and
a Chroma folder. Tests marked slow embed a real PDF and ask SmolLM2 behind llama.cpp's server."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn
from fastapi import FastAPI

from rag.accounts import Accounts
from rag.api.app import create_app
from rag.config import Settings
from rag.generation import REFUSAL
from rag.pipeline import RAG
from tests.conftest import REPO
from tests.processes import cli_env, free_port, running_server

NUMBERS = "How are JavaScript numbers represented as integers in traces?"
OFF_TOPIC = "What is a good recipe for chocolate chip cookies?"
SERVER_START_GUARD_S = 60


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app behind uvicorn on a free port, until the block ends; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + SERVER_START_GUARD_S
        while not server.started:  # set once the socket listens
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the API server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SERVER_START_GUARD_S)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def events(response: httpx.Response) -> list[tuple[str, str]]:
    """(event name, data) of each server-sent event, as a browser's EventSource reads them."""
    found: list[tuple[str, str]] = []
    name, data = "message", []
    for line in response.iter_lines():
        if not line:
            if data:
                found.append((name, "\n".join(data)))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))
    return found


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    """Every error: JSON with a code and a message, never a traceback. Returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code, body
    assert "Traceback" not in response.text
    return body["error"]["message"]


# --- the door, and the errors: no model is loaded ---------------------------------------------

@pytest.fixture(scope="module")
def exposed(tmp_path_factory) -> Iterator[tuple[str, dict[str, str], RAG, Accounts]]:
    """A server as it runs beyond loopback: tokens always; an admin and two readers."""
    data_dir = tmp_path_factory.mktemp("api-data")
    engine, accounts = RAG(Settings(data_dir=data_dir)), Accounts.in_data_dir(data_dir)
    tokens = {name: accounts.tokens.create(name, "admin" if name == "admin" else "reader")
              for name in ("admin", "ann", "bob")}
    with serving(create_app(engine, accounts, upload_limit_mb=1)) as url:
        yield url, tokens, engine, accounts


def test_every_route_but_health_and_the_spec_needs_a_token(exposed):
    url, tokens, _, _ = exposed
    spec = httpx.get(f"{url}/openapi.json").json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert httpx.get(f"{url}/v1/health").json() == {"status": "ok"}
    for path, methods in spec["paths"].items():
        for method in methods:
            if path == "/v1/health":
                continue
            concrete = path.replace("{document_id}", "0" * 64).replace("{job_id}", "1") \
                .replace("{conversation_id}", "x")
            response = httpx.request(method.upper(), f"{url}{concrete}")
            message = assert_error(response, 401, "unauthorized")
            assert "tokens create" in message
            assert response.headers["www-authenticate"] == "Bearer"
    wrong = httpx.get(f"{url}/v1/documents", headers=bearer(tokens["ann"] + "x"))
    assert "unknown or revoked" in assert_error(wrong, 401, "unauthorized")
    assert httpx.get(f"{url}/v1/documents", headers=bearer(tokens["ann"])).json() == []


def raw_response(url: str, request: bytes) -> tuple[int, dict]:
    """Status and JSON body of the response to bytes sent as they are: a client library would
    refuse to declare a body it does not send."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:

        def more() -> bytes:
            chunk = connection.recv(65536)
            assert chunk, "the server closed the connection without a whole response"
            return chunk

        connection.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            received += more()
        head, _, body = received.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
        while len(body) < length:
            body += more()
    return int(head.split()[1]), json.loads(body)


def test_an_upload_is_refused_before_its_body_is_read(exposed):
    """10 GiB announced, 1 KiB sent: the answer comes at once, without a token and with one."""
    url, tokens, _, _ = exposed
    admin = f"Authorization: Bearer {tokens['admin']}\r\n".encode()
    for authorization, status, code in ((b"", 401, "unauthorized"), (admin, 413, "too_large")):
        got, body = raw_response(url, (
            b"POST /v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n" + authorization +
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 10737418240\r\n\r\n" + b"x" * 1024))
        assert (got, body["error"]["code"]) == (status, code)


def test_a_reader_may_read_but_not_change(exposed):
    url, tokens, _, _ = exposed
    reader = bearer(tokens["ann"])
    for method, path in (("POST", "/v1/documents"), ("DELETE", f"/v1/documents/{'0' * 64}"),
                         ("GET", "/v1/jobs"), ("GET", "/v1/jobs/1")):
        kwargs = {"files": [("files", ("a.md", b"# A\n\ntext"))]} if method == "POST" else {}
        response = httpx.request(method, f"{url}{path}", headers=reader, **kwargs)
        assert "admin" in assert_error(response, 403, "forbidden")
    assert httpx.get(f"{url}/v1/documents", headers=reader).status_code == 200


def test_uploads_are_refused_by_type_emptiness_and_size_with_each_cause(exposed):
    url, tokens, engine, _ = exposed
    admin = bearer(tokens["admin"])

    def upload(*files: tuple[str, bytes]) -> httpx.Response:
        return httpx.post(f"{url}/v1/documents", headers=admin,
                          files=[("files", file) for file in files])

    message = assert_error(upload(("../../evil.exe", b"MZ")), 415, "unsupported_type")
    assert message.startswith("evil.exe: unsupported file type '.exe'") and "../" not in message
    assert "save it as .docx" in assert_error(upload(("old.doc", b"\xd0\xcf")), 415,
                                              "unsupported_type")
    assert assert_error(upload(("empty.md", b"")), 400, "empty_file") == "empty.md: empty file"
    assert "name" in assert_error(upload(("..", b"x")), 400, "bad_file_name")
    both = assert_error(upload(("a.exe", b"x"), ("b.md", b"")), 400, "bad_request")
    assert "a.exe: unsupported" in both and "b.md: empty file" in both
    # over the 1 MB cap: declared, the server answers before reading; streamed, it stops reading
    big = b"x" * (3 * 1024 * 1024)
    assert "1 MB" in assert_error(upload(("big.md", big)), 413, "too_large")
    part = (b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.md"\r\n\r\n'
            + big + b"\r\n--b--\r\n")
    chunked = httpx.post(f"{url}/v1/documents", content=iter([part[:1000], part[1000:]]),
                         headers={**admin, "content-type": "multipart/form-data; boundary=b"})
    assert "content-length" not in chunked.request.headers
    assert_error(chunked, 413, "too_large")
    assert engine.queue.jobs.jobs() == [], "nothing was queued"


def test_errors_are_json_without_the_input_or_a_trace(exposed):
    url, tokens, _, _ = exposed
    reader = bearer(tokens["ann"])
    assert_error(httpx.get(f"{url}/v1/nowhere", headers=reader), 404, "not_found")
    assert_error(httpx.put(f"{url}/v1/documents", headers=reader), 405, "method_not_allowed")
    secret = "hunter2-" * 600  # too long a question: the message must not echo it
    too_long = httpx.post(f"{url}/v1/ask", headers=reader, json={"question": secret})
    assert "hunter2" not in assert_error(too_long, 422, "invalid_request")
    broken = httpx.post(f"{url}/v1/ask", content=b"{not json",
                        headers={**reader, "content-type": "application/json"})
    assert_error(broken, 422, "invalid_request")
    assert_error(httpx.post(f"{url}/v1/ask", headers=reader, json={"question": "  "}), 422,
                 "invalid_request")
    assert_error(httpx.post(f"{url}/v1/chat/completions", headers=reader,
                            json={"messages": [{"role": "assistant", "content": "hi"}]}),
                 422, "invalid_request")
    unknown = "0" * 64
    assert_error(httpx.get(f"{url}/v1/documents/{unknown}", headers=reader), 404, "not_found")
    assert_error(httpx.post(f"{url}/v1/ask", headers=reader,
                            json={"question": "q", "documents": [unknown]}), 404, "not_found")
    admin = bearer(tokens["admin"])
    assert_error(httpx.delete(f"{url}/v1/documents/{unknown}", headers=admin), 404, "not_found")
    assert_error(httpx.get(f"{url}/v1/jobs/999999", headers=admin), 404, "not_found")


def test_a_reader_sees_only_their_own_conversations(exposed):
    url, tokens, engine, accounts = exposed
    ann = accounts.tokens.verify(tokens["ann"])
    anns = engine.conversations.create("Ann's")
    accounts.owners.claim(anns.id, ann.user_id)
    unowned = engine.conversations.create("from the app, before accounts")

    def listed(name: str) -> set[str]:
        response = httpx.get(f"{url}/v1/conversations", headers=bearer(tokens[name]))
        return {found["id"] for found in response.json()}

    assert anns.id in listed("ann") and unowned.id not in listed("ann")
    assert anns.id not in listed("bob")
    assert {anns.id, unowned.id} <= listed("admin")
    path = f"{url}/v1/conversations/{anns.id}"
    assert httpx.get(path, headers=bearer(tokens["ann"])).json()["title"] == "Ann's"
    for method in ("GET", "DELETE"):
        assert_error(httpx.request(method, path, headers=bearer(tokens["bob"])), 404,
                     "not_found")
    asked = httpx.post(f"{url}/v1/ask", headers=bearer(tokens["bob"]),
                       json={"question": "and then?", "conversation": anns.id})
    assert_error(asked, 404, "not_found")
    assert engine.conversations.messages(anns.id) == [], "nothing was asked in Ann's name"
    assert httpx.delete(path, headers=bearer(tokens["ann"])).status_code == 204
    assert engine.conversations.get(anns.id) is None and accounts.owners.owner(anns.id) is None


def test_on_loopback_no_token_is_needed_until_the_first_exists(tmp_path):
    engine, accounts = RAG(Settings(data_dir=tmp_path)), Accounts.in_data_dir(tmp_path)
    with serving(create_app(engine, accounts, loopback_only=True)) as url:
        assert httpx.get(f"{url}/v1/jobs").status_code == 200, "a local admin"
        page = httpx.get(f"{url}/v1/jobs", headers={"Origin": "https://evil.example"})
        assert "web page" in assert_error(page, 403, "forbidden")
        rebound = httpx.get(f"{url}/v1/jobs", headers={"Host": "evil.example"})
        assert_error(rebound, 403, "forbidden")

        token = accounts.tokens.create("first", "reader")  # as the CLI does, from outside
        assert_error(httpx.get(f"{url}/v1/jobs"), 401, "unauthorized")
        assert_error(httpx.get(f"{url}/v1/jobs", headers=bearer(token)), 403, "forbidden")
        assert httpx.get(f"{url}/v1/documents", headers=bearer(token)).status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize(("host", "documents"), [("127.0.0.2", 200), ("0.0.0.0", 401)])
def test_serve_listens_where_rag_host_says_and_beyond_loopback_wants_a_token(tmp_path, host,
                                                                             documents):
    """`python -m rag serve` as users start it: RAG_HOST and RAG_PORT from the environment. On a
    loopback address the first start needs no token; on every address it says so and refuses."""
    port, log = free_port(), tmp_path / "serve.log"
    env = cli_env({"RAG_HOST": host, "RAG_PORT": str(port), "RAG_DATA_DIR": str(tmp_path)})
    reach = "127.0.0.2" if host == "127.0.0.2" else "127.0.0.1"
    with running_server([sys.executable, "-m", "rag", "serve"], log=log, cwd=REPO, env=env,
                        ready_url=f"http://{reach}:{port}/v1/health", timeout_s=120):
        response = httpx.get(f"http://{reach}:{port}/v1/documents")
        assert response.status_code == documents, response.text
    said = log.read_text(errors="replace")
    assert f"http://{host}:{port}" in said
    assert ("every request will get 401" in said) == (host == "0.0.0.0")


# --- answers: the real embedder and SmolLM2 ---------------------------------------------------

@pytest.fixture(scope="module")
def answering(tmp_path_factory, embedder, llm_server) -> Iterator[tuple[str, str, RAG]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("api-answers"), llm_base_url=llm_server,
                        llm_model="smollm2", llm_max_tokens=48)
    engine, accounts = RAG(settings, embedder=embedder), Accounts.in_data_dir(settings.data_dir)
    token = accounts.tokens.create("admin", "admin")
    with serving(create_app(engine, accounts)) as url:
        yield url, token, engine


@pytest.fixture(scope="module")
def indexed(answering, bench_data: Path) -> dict:
    """tracemonkey.pdf uploaded through the API and indexed by the engine's worker."""
    url, token, engine = answering
    pdf = (bench_data / "pdfs/pdfjs/tracemonkey.pdf").read_bytes()
    uploaded = httpx.post(f"{url}/v1/documents", headers=bearer(token),
                          files=[("files", ("tracemonkey.pdf", pdf, "application/pdf"))])
    assert uploaded.status_code == 202, uploaded.text
    [accepted] = uploaded.json()["files"]
    assert accepted["job"]["status"] in ("queued", "running") and accepted["error"] is None
    assert engine.queue.wait_idle(timeout=600)
    job = httpx.get(f"{url}/v1/jobs/{accepted['job']['id']}", headers=bearer(token)).json()
    assert job["status"] == "indexed" and job["chunks"] > 0, job
    return job


@pytest.mark.slow
def test_an_uploaded_file_is_listed_with_its_job(answering, indexed):
    url, token, _ = answering
    [listed] = httpx.get(f"{url}/v1/documents", headers=bearer(token)).json()
    assert listed["id"] == indexed["document_id"] and listed["source"] == "tracemonkey.pdf"
    assert listed["chunks"] == indexed["chunks"] and listed["pages"] > 1


@pytest.mark.slow
def test_ask_streams_sources_then_text_then_done(answering, indexed):
    url, token, engine = answering
    with httpx.stream("POST", f"{url}/v1/ask", headers=bearer(token), timeout=300,
                      json={"question": NUMBERS}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        received = events(response)
    names = [name for name, _ in received]
    assert names[0] == "sources" and names[-1] == "done" and set(names[1:-1]) == {"message"}
    found = json.loads(received[0][1])
    assert found["sources"] and all(source["page"] for source in found["sources"])
    assert found["sources"][0]["similarity"] >= engine.settings.similarity_threshold
    assert all(source["cited"] is None for source in found["sources"])
    text = "".join(json.loads(data)["text"] for _, data in received[1:-1])
    done = json.loads(received[-1][1])
    assert text.strip() and done["status"] == "done" and done["refused"] is False
    # `cited` in the order the answer cites them, `cited_sources` in the sources' order
    assert [source["number"] for source in done["cited_sources"]] == sorted(done["cited"])
    assert done["conversation"] == found["conversation"] and "error" not in done

    again = httpx.get(f"{url}/v1/conversations/{done['conversation']}", headers=bearer(token))
    [question, answer] = again.json()["messages"]
    assert question["content"] == NUMBERS and answer["content"] == done["answer"]


@pytest.mark.slow
def test_an_off_topic_question_is_refused_as_one_json_object(answering, indexed):
    url, token, _ = answering
    response = httpx.post(f"{url}/v1/ask", headers=bearer(token), timeout=300,
                          json={"question": OFF_TOPIC, "stream": False})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["refused"], answer["answer"], answer["sources"]) == (True, REFUSAL, [])
    assert "threshold" in answer["note"]


@pytest.mark.slow
def test_the_openai_client_gets_answers_with_their_sources(answering, indexed):
    url, token, _ = answering
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, timeout=300)
    assert [model.id for model in client.models.list().data] == ["rag"]
    messages = [{"role": "user", "content": NUMBERS}]
    completion = client.chat.completions.create(model="rag", messages=messages)
    assert completion.choices[0].message.content.strip()
    extra = completion.model_extra
    assert extra["refused"] is False and extra["sources"][0]["page"]
    assert all(source["cited"] in (True, False) for source in extra["sources"])

    chunks = list(client.chat.completions.create(model="rag", messages=messages, stream=True))
    assert chunks[0].model_extra["sources"], "the sources come before the text"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks).strip()
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.model_extra["refused"] is False
    assert [source["number"] for source in last.model_extra["sources"]] == list(
        range(1, len(chunks[0].model_extra["sources"]) + 1))


@pytest.mark.slow
def test_an_unreachable_model_is_a_503_with_the_reason(answering, indexed, unused_port):
    _, token, engine = answering
    dead = RAG(engine.settings.model_copy(update={
        "llm_base_url": f"http://127.0.0.1:{unused_port}/v1", "llm_timeout_s": 5}),
        embedder=engine.embedder)
    with serving(create_app(dead, Accounts.in_data_dir(engine.settings.data_dir))) as dead_url:
        asked = httpx.post(f"{dead_url}/v1/ask", headers=bearer(token), timeout=120,
                           json={"question": NUMBERS, "stream": False})
        assert "connection refused" in assert_error(asked, 503, "llm_unavailable")
        with httpx.stream("POST", f"{dead_url}/v1/ask", headers=bearer(token), timeout=120,
                          json={"question": NUMBERS}) as response:
            received = events(response)
        done = json.loads(received[-1][1])
        assert done["status"] == "failed" and done["error"]["code"] == "llm_unavailable"
        assert all(name != "message" or "failed" not in data for name, data in received)
        client = openai.OpenAI(base_url=f"{dead_url}/v1", api_key=token, max_retries=0)
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="rag", messages=[
                {"role": "user", "content": NUMBERS}])
        assert failed.value.status_code == 503
