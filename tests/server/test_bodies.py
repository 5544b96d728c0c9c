"""Issue 9, item 4 (and 10a end to end): request bodies are capped by the real server (`manage.py
serve`, daphne) before they are read, by Content-Length and while reading chunked bodies; the upload
routes get the file cap; a chunked upload within it works. Raw sockets, so that nothing in a client
library hides what the server does."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx2

from tests.support.live_server import FILE_LIMIT, LiveServer

DATA_LIMIT = 64 * 1024
UPLOAD_LIMIT = FILE_LIMIT + 64 * 1024
LIVE_SETTINGS = {"DATA_UPLOAD_MAX_MEMORY_SIZE": str(DATA_LIMIT), "API_KEY_FAILURE_LIMIT": "3"}


def _connect(live: LiveServer) -> socket.socket:
    url = urlsplit(live.base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=15)
    return sock


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def _declared_only(
    live: LiveServer, path: str, length: int, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """Send headers that announce `length` bytes, and none of the body."""
    with _connect(live) as sock:
        sock.sendall(_head("POST", path, {"Content-Length": str(length), **headers}))
        return _read_response(sock)  # the old server waited here for the body, until the timeout


def test_oversized_content_length_is_refused_before_the_body(live: LiveServer) -> None:
    # Anonymous, on a page: plain words.
    status, headers, body = _declared_only(
        live, "/accounts/login/", 256 * 1024 * 1024, **{"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 413 and headers["content-type"].startswith("text/plain")
    assert b"too large" in body
    # Under /v1: an OpenAI error object, not retried by the SDK.
    status, headers, body = _declared_only(
        live,
        "/v1/assistants",
        DATA_LIMIT + 1,
        **{"Content-Type": "application/json", "Authorization": "Bearer x"},
    )
    assert status == 413 and headers["x-should-retry"] == "false"
    error = json.loads(body)["error"]
    assert error["code"] == "payload_too_large" and error["type"] == "invalid_request_error"
    assert str(DATA_LIMIT) in error["message"]


def test_expect_100_continue_client_is_told_413_instead_of_continue(live: LiveServer) -> None:
    status, _, _ = _declared_only(live, "/v1/threads", 10**9, Expect="100-continue")
    assert status == 413


def test_positive_control_a_body_under_the_limit_is_served(live: LiveServer) -> None:
    client = live.client()
    big = client.beta.assistants.create(model="m", instructions="x" * (DATA_LIMIT - 1024))
    assert len(big.instructions or "") == DATA_LIMIT - 1024


def test_upload_route_has_the_file_cap(live: LiveServer) -> None:
    # Bigger than any other body may be, smaller than an upload may be: accepted on /v1/files.
    content = b"a" * (DATA_LIMIT * 3)
    f = live.client().files.create(file=("three-times.txt", content), purpose="assistants")
    assert f.bytes == len(content)
    status, _headers, body = _declared_only(
        live, "/v1/files", UPLOAD_LIMIT + 1, **{"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
    # The chat's upload route too (anonymous: the cap applies before login is checked).
    status, _, _ = _declared_only(live, "/chat/send/", UPLOAD_LIMIT + 1)
    assert status == 413
    status, _, _ = _declared_only(live, "/chat/stop/", DATA_LIMIT + 1)
    assert status == 413


def test_chunked_body_is_cut_off_while_it_is_read(live: LiveServer) -> None:
    """No Content-Length: the server counts as it reads and answers once the limit is passed."""
    chunk = b"x" * 16384
    frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    budget = 64 * 1024 * 1024
    sent = 0
    with _connect(live) as sock:
        sock.sendall(
            _head(
                "POST",
                "/v1/assistants",
                {
                    "Transfer-Encoding": "chunked",
                    "Content-Type": "application/json",
                    "Authorization": "Bearer x",
                },
            )
        )
        answered = False
        while sent < budget:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                answered = True
                break
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        assert answered or sent < budget, "the server read the whole 64 MiB without answering"
        status, _, body = _read_response(sock)
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
    # Answered soon after the limit: what was sent beyond it sat in socket buffers.
    assert sent < 16 * 1024 * 1024, sent


def test_chunked_multipart_upload_within_the_cap_works(live: LiveServer) -> None:
    boundary = "sec-server-boundary"
    content = bytes(range(256)) * 600  # 150 KB: over the data limit, under the file cap
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="chunked.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode(),
        content,
        f"\r\n--{boundary}--\r\n".encode(),
    ]

    def body() -> Iterator[bytes]:  # a generator: httpx sends it chunked, with no Content-Length
        yield from parts

    response = httpx2.post(
        f"{live.base_url}/files",
        content=body(),
        headers={
            "Authorization": f"Bearer {live.keys['alice']}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
        timeout=30,
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == len(content)
    stored = live.client().files.content(response.json()["id"]).read()
    assert stored == content


def test_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_key_throttle(live: LiveServer) -> None:
    # This server trusts no proxy (the default), so each X-Forwarded-For is the client's own claim.
    statuses = []
    for i in range(5):
        response = httpx2.get(
            f"{live.base_url}/assistants",
            headers={"Authorization": f"Bearer sk-as-{'Zq8Xw3Vt' * 5}{i}", "X-Forwarded-For": f"10.9.8.{i}"},
        )
        statuses.append(response.status_code)
    # In phase 2 every server shares one Redis, so earlier bad keys from 127.0.0.1 may already
    # count: at most the limit (3) are 401, and the burst ends in 429 either way.
    assert statuses.count(401) <= 3 and statuses[-1] == 429, statuses
    # A valid key from the same address still works.
    assert (
        httpx2.get(
            f"{live.base_url}/assistants", headers={"Authorization": f"Bearer {live.keys['bob']}"}
        ).status_code
        == 200
    )
