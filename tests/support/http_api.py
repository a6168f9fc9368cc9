"""A real HTTP JSON API on 127.0.0.1 for source tests: every pagination style, scripted failures, request log.

Tests talk to it over real sockets with real HTTP, so retries, headers and pagination are exercised
exactly as against a production API — only the server is small enough to read in one sitting.

Endpoints (page size `page_size`):
- `/cursor?cursor=...`  → `{"data": {"items": [...]}, "meta": {"next_cursor": "..." | null}}`
- `/pages?page=N`       → `{"results": [...]}` (page 1 first, an empty list after the last page)
- `/links?offset=N`     → a bare list, with `Link: <...>; rel="next"` while more remain
- `/records`            → a bare list of every record, no pagination
- `/data`               → `{"data": [...]}`, every record, no pagination (`{"data": []}` when there are none)

With `tls`, the port speaks HTTPS and plain HTTP both (it peeks at the first byte of each connection), so a
test can show what a client sends after a downgrade to `http://` on the very same host and port.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit


@dataclass(frozen=True)
class ReceivedRequest:
    """What the server saw: header names are lower-cased, each query parameter keeps its last value."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    over_tls: bool = False


Misbehaviour = Literal["drop", "hang", "endless"]
"""`drop`: close the connection without answering. `hang`: answer nothing until the server stops (a timeout).
`endless`: 200 with a JSON array that never ends and no Content-Length, until the client hangs up."""


@dataclass(frozen=True)
class Fault:
    """A scripted answer: an HTTP status with its headers and body, or a network misbehaviour."""

    status: int | Misbehaviour
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass
class _PageFault:
    """A fault answered to one page's requests; `remaining` None means every time."""

    path: str
    query: dict[str, str]
    fault: Fault
    remaining: int | None

    def matches(self, path: str, query: dict[str, str]) -> bool:
        return path == self.path and self.query.items() <= query.items() and self.remaining != 0

    def take(self) -> Fault:
        if self.remaining is not None:
            self.remaining -= 1
        return self.fault


class JsonApi:
    """The server's state: records served, scripted faults still to answer, requests received."""

    def __init__(self, records: list[dict[str, Any]], *, page_size: int, token: str | None) -> None:
        self.records = records
        self.page_size = page_size
        self.token = token
        self.base_url = ""
        self._faults: deque[Fault] = deque()
        self._page_faults: list[_PageFault] = []
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def fail_next(
        self, times: int, status: int | Misbehaviour, *, retry_after: str | None = None, body: str = ""
    ) -> None:
        """Answer the next `times` requests (any path) with `status` (or misbehave) instead of serving data."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self._lock:
            self._faults.extend(Fault(status, headers, body or json.dumps({"error": f"scripted {status}"}))
                                for _ in range(times))

    def fail_page(self, path: str, query: dict[str, str], status: int, *, times: int | None = None) -> None:
        """Answer requests for one page (`path` with every item of `query`) with `status`: the first `times`, or all.

        Unlike `fail_next`, other pages are served as usual, so a failure can strike in the middle of a read.
        """
        self.script_page(path, query, Fault(status, body=json.dumps({"error": f"scripted {status}"})), times=times)

    def script_page(self, path: str, query: dict[str, str], answer: Fault, *, times: int | None = None) -> None:
        """Answer requests for one page with `answer` (any status, headers, body): a hostile or broken API."""
        with self._lock:
            self._page_faults.append(_PageFault(path, query, answer, times))

    def answer(self, request: ReceivedRequest) -> Fault | tuple[Any, dict[str, str]]:
        """Record the request, then pick its answer: a scripted fault, an auth failure, or a page of records."""
        path, query, headers = request.path, request.query, request.headers
        with self._lock:
            self._requests.append(request)
            if self._faults:
                return self._faults.popleft()
            for page_fault in self._page_faults:
                if page_fault.matches(path, query):
                    return page_fault.take()
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return Fault(401, body=json.dumps({"error": "missing or invalid bearer token"}))
        return self._route(path, query)

    def _route(self, path: str, query: dict[str, str]) -> Fault | tuple[Any, dict[str, str]]:
        size = self.page_size
        if path == "/records":
            return self.records, {}
        if path == "/data":
            return {"data": self.records}, {}
        if path == "/cursor":
            offset = int(query.get("cursor", "after-0").removeprefix("after-"))
            following = offset + size
            cursor = f"after-{following}" if following < len(self.records) else None
            return {"data": {"items": self.records[offset:following]}, "meta": {"next_cursor": cursor}}, {}
        if path == "/pages":
            offset = (int(query.get("page", "1")) - 1) * size
            return {"results": self.records[offset:offset + size]}, {}
        if path == "/links":
            offset = int(query.get("offset", "0"))
            headers = {}
            if offset + size < len(self.records):
                headers["Link"] = f'<{self.url(path)}?{urlencode({**query, "offset": offset + size})}>; rel="next"'
            return self.records[offset:offset + size], headers
        return Fault(404, body=json.dumps({"error": f"no endpoint {path}"}))


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        over_tls = isinstance(self.connection, ssl.SSLSocket)
        answer = self.server.api.answer(ReceivedRequest(parts.path, dict(parse_qsl(parts.query)), headers, over_tls))
        if isinstance(answer, Fault):
            if answer.status == "hang":
                self.server.api.stopping.wait()
            if answer.status == "endless":
                self._send_endless_array()
            if isinstance(answer.status, str):
                self.close_connection = True
                return
            self._send(answer.status, answer.body, answer.headers)
        else:
            body, extra_headers = answer
            self._send(200, json.dumps(body), extra_headers)

    def _send_endless_array(self) -> None:
        """HTTP/1.0 with no Content-Length: the body ends only when the connection does, here never by itself."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        record = json.dumps({"id": 1, "status": "paid"}).encode() + b","
        try:
            self.wfile.write(b"[")
            while not self.server.api.stopping.is_set():
                self.wfile.write(record * 1024)
        except OSError:
            return  # the client hung up: what a reader with a size limit does

    def _send(self, status: int, body: str, headers: dict[str, str]) -> None:
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests assert on `JsonApi.requests`, not on stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: JsonApi, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api
        self.tls = tls

    def get_request(self) -> tuple[Any, Any]:
        """A connection opening with a TLS handshake record (0x16) is served over TLS, any other as plain HTTP."""
        connection, address = super().get_request()
        if self.tls is not None and connection.recv(1, socket.MSG_PEEK) == b"\x16":
            connection = self.tls.wrap_socket(connection, server_side=True)
        return connection, address


@contextmanager
def serve_json_api(
    records: list[dict[str, Any]], *, page_size: int = 2, token: str | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[JsonApi]:
    """Run the API in a background thread for the duration of the `with` block (`base_url` https with `tls`)."""
    api = JsonApi(records, page_size=page_size, token=token)
    server = _Server(api, tls)
    api.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


def refused_url() -> str:
    """A URL on a local port nothing listens on, so connecting fails at once (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/records"
