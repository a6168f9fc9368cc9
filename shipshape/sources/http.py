"""Reads JSON records from an HTTP API, page by page, retrying only what can succeed on a second try.

Window placeholders: `{start}` and `{end}` in the URL and in params become the window's bounds —
`YYYY-MM-DD` when both bounds fall on midnight UTC (day partitions), otherwise ISO 8601 UTC like
`2024-01-31T05:00:00Z`. `{end}` is exclusive, as windows are half-open.

Retries: 429 waits for Retry-After (capped), 5xx and network faults back off exponentially with full
jitter; any other 4xx is a mistake retrying cannot fix and fails at once. Pages stream into
batches of at most `chunk_rows` records, so memory holds one page and one batch.

A hostile or broken API is contained (SECURITY.md):
- the token goes only to the origin of `source.url` (scheme, host and port): it is added to each request for
  that origin, never to the client, so httpx's redirect rule (it drops `Authorization` when a redirect leaves
  the origin) holds too. A `Link` next page on another origin — another host or port, or `http://` when the
  source is `https://` — is refused rather than followed without the token: data the platform publishes
  should come from the reviewed host, and an API that moves its pages elsewhere is worth a look by a person;
- a page is read as a stream and refused once it passes `max_page_bytes` (never read whole first);
- at most `max_pages` pages are read; a cursor or next link already seen, or a numbered page repeating the
  records of an earlier one (an API ignoring the page parameter), stops the read with an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import httpx
import pyarrow as pa
from pydantic import Field

from shipshape.declaration_base import SecretRef, StrictModel
from shipshape.errors import SourceError, TransientError
from shipshape.partitions import Window
from shipshape.secrets import SecretResolver
from shipshape.sources.base import CHUNK_ROWS, rows_to_batch
from shipshape.sources.kind import SourceBase, SourceKind

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 60.0
BODY_SNIPPET_CHARS = 300
DEFAULT_MAX_PAGES = 10_000
DEFAULT_MAX_PAGE_BYTES = 64 * 1024 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NETWORK_FAULTS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_JSON_FAMILIES: list[tuple[type | tuple[type, ...], str]] = [
    (bool, "boolean"),  # before int: bool is an int in Python
    (int, "integer"),
    (float, "number"),
    ((dict, list), "json"),
]
_FIX_HINTS = {
    401: "check the token (source.token) is set and valid",
    403: "check the token (source.token) has access to this endpoint",
    404: "check source.url and its params",
}


class CursorPagination(StrictModel):
    type: Literal["cursor"]
    cursor_field: str = Field(description="Dotted path of the next cursor in the response body.")
    cursor_param: str = "cursor"


class PageNumberPagination(StrictModel):
    type: Literal["page_number"]
    page_param: str = "page"
    first_page: int = 1


class LinkHeaderPagination(StrictModel):
    type: Literal["link_header"]


Pagination = Annotated[CursorPagination | PageNumberPagination | LinkHeaderPagination, Field(discriminator="type")]


class HttpSource(SourceBase):
    """`kind: http` in a declaration: JSON records from an HTTP API, page by page."""

    kind: Literal["http"]
    url: str = Field(description="Endpoint URL; `{start}` and `{end}` (ISO) may appear in it or in params.")
    params: dict[str, str] = Field(default_factory=dict)
    records_path: str = Field("", description="Dotted path to the list of records in the body; empty = the body.")
    pagination: Pagination | None = None
    token: SecretRef | None = None
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 6
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    max_pages: Annotated[int, Field(ge=1)] = Field(
        DEFAULT_MAX_PAGES, description="Pages read at most; more is an error (an API that never stops paging)."
    )
    max_page_bytes: Annotated[int, Field(ge=1)] = Field(
        DEFAULT_MAX_PAGE_BYTES, description="Bytes one page's body may hold; checked while it streams in."
    )

    def describe(self) -> str:
        return f"HTTP JSON API `{self.url}`"


class _Answer(NamedTuple):
    """A response whose body was streamed in under `max_page_bytes` (the stream itself is closed)."""

    response: httpx.Response
    content: bytes


class _Page(NamedTuple):
    records: list[dict[str, Any]]
    body: Any
    response: httpx.Response


class HttpJsonSource:
    """A `Source` over a JSON API; `base_delay`, `max_delay`, `sleep` and `rng` are injectable for tests."""

    def __init__(
        self,
        spec: HttpSource,
        secrets: SecretResolver,
        *,
        chunk_rows: int = CHUNK_ROWS,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._spec = spec
        self._secrets = secrets
        self._chunk_rows = chunk_rows
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._rng = rng or random.Random()

    def observed_columns(self, window: Window) -> dict[str, str | None]:
        """Keys of the first page's records → family of each key's first non-null value (strings are untyped).

        An empty first page shows no keys at all; it is reported as the declared columns, untyped,
        because calling every column missing on a quiet day would be a false drift alarm.
        """
        pages = self._pages(window)
        try:
            records = next(pages).records
        finally:
            pages.close()
        if not records:
            return dict.fromkeys(self._spec.columns)
        keys = dict.fromkeys(key for record in records for key in record)
        return {key: _json_family(next((r[key] for r in records if r.get(key) is not None), None)) for key in keys}

    def batches(self, window: Window) -> Iterator[pa.RecordBatch]:
        """Every page's records, declared keys only (a missing key is null), at most `chunk_rows` per batch."""
        names = list(self._spec.columns)
        rows: list[tuple[Any, ...]] = []
        for page in self._pages(window):
            for record in page.records:
                rows.append(tuple(record.get(name) for name in names))
                if len(rows) == self._chunk_rows:
                    yield rows_to_batch(names, rows)
                    rows = []
        if rows:
            yield rows_to_batch(names, rows)

    def _pages(self, window: Window) -> Generator[_Page, None, None]:
        """Each page's records, following the declared pagination until it says there is nothing more.

        `seen` holds every cursor, next link or numbered page's records digest so far: a repeat of any of them,
        not only of the last, is a loop.
        """
        pagination = self._spec.pagination
        url = httpx.URL(_fill(self._spec.url, window))
        origin = _origin(url)
        params: dict[str, Any] = {name: _fill(value, window) for name, value in self._spec.params.items()}
        if isinstance(pagination, PageNumberPagination):
            params[pagination.page_param] = pagination.first_page
        seen: set[str] = {str(url.copy_merge_params(params))}
        with self._client() as client:
            for page_count in range(1, self._spec.max_pages + 1):
                # Merged here: httpx's own `params=` would replace a query string written into source.url.
                page = self._get_page(client, url.copy_merge_params(params), origin)
                yield page
                where = f"http source: GET {page.response.url}"
                if isinstance(pagination, CursorPagination):
                    cursor = _at_path(page.body, pagination.cursor_field)
                    if cursor in (None, ""):
                        return
                    _refuse_repeat(seen, f"cursor {cursor!r}", f"{where} returned cursor {cursor!r} a second time",
                                   "check pagination.cursor_field")
                    params[pagination.cursor_param] = cursor
                elif isinstance(pagination, PageNumberPagination):
                    if not page.records:
                        return
                    _refuse_repeat(seen, _digest(page.records), f"{where} returned the records of an earlier page",
                                   f"check the API pages by pagination.page_param {pagination.page_param!r}")
                    params[pagination.page_param] += 1
                elif isinstance(pagination, LinkHeaderPagination) and "next" in page.response.links:
                    # The next link carries its own query string; sending params again would duplicate them.
                    url, params = page.response.url.join(page.response.links["next"]["url"]), {}
                    if _origin(url) != origin:
                        raise SourceError(
                            f"{where} names {url} as the next page, on another origin than source.url "
                            f"({_show(origin)}); refused, the token and the read stay on the declared origin — "
                            "check the API's Link header or point source.url at the origin that serves the pages"
                        )
                    _refuse_repeat(seen, str(url), f"{where} links to {url}, a page already read, as next",
                                   "the API's Link header loops")
                else:
                    return
                if page_count == self._spec.max_pages:
                    raise SourceError(
                        f"{where}: page {page_count} still has a next page, and source.max_pages is "
                        f"{self._spec.max_pages}; stopped — if the API really has more, raise source.max_pages "
                        "or narrow the window or params"
                    )

    def _client(self) -> httpx.Client:
        """No token here: a client-level header would go to every URL the client is handed (see `_headers`)."""
        return httpx.Client(
            headers={"Accept": "application/json"}, timeout=self._spec.timeout_seconds, follow_redirects=True
        )

    def _headers(self, url: httpx.URL, origin: tuple[str, str, int]) -> dict[str, str]:
        """The bearer token, only for a request to the declared origin."""
        if self._spec.token is None or _origin(url) != origin:
            return {}
        return {"Authorization": f"Bearer {self._secrets(self._spec.token, 'http source token')}"}

    def _get_page(self, client: httpx.Client, url: httpx.URL, origin: tuple[str, str, int]) -> _Page:
        response, content = self._get(client, url, origin)
        try:
            body = json.loads(content)
        except ValueError:
            raise SourceError(
                f"http source: GET {response.url} did not return JSON: {_snippet(content)}; check source.url"
            ) from None
        records = _at_path(body, self._spec.records_path)
        if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
            raise SourceError(
                f"http source: GET {response.url}: records_path {self._spec.records_path!r} does not lead to a list "
                f"of JSON objects; body starts {_snippet(content)}"
            )
        return _Page(records, body, response)

    def _get(self, client: httpx.Client, url: httpx.URL, origin: tuple[str, str, int]) -> _Answer:
        """One GET with retries: 429 and 5xx and network faults are retried, other 4xx fail at once."""
        for attempt in range(1, self._spec.max_attempts + 1):
            try:
                with client.stream("GET", url, headers=self._headers(url, origin)) as streamed:
                    response, content = streamed, self._read_capped(streamed)
            except _NETWORK_FAULTS as error:
                problem, delay = f"{type(error).__name__}: {error}", self._backoff(attempt)
            except httpx.HTTPError as error:
                raise SourceError(f"http source: GET {url} cannot be sent: {error}; check source.url") from error
            else:
                if response.is_success:
                    return _Answer(response, content)
                status = response.status_code
                if status != 429 and status < 500:
                    hint = _FIX_HINTS.get(status, "fix the request in the declaration")
                    raise SourceError(
                        f"http source: GET {response.url} answered {status} {response.reason_phrase}: "
                        f"{_snippet(content)} — {hint} (not retried)"
                    )
                problem = f"HTTP {status} {response.reason_phrase}"
                retry_after = _retry_after(response) if status == 429 else None
                delay = self._backoff(attempt) if retry_after is None else retry_after
            if attempt == self._spec.max_attempts:
                break
            logger.warning(
                "http source: GET %s failed (%s); attempt %d of %d, retrying in %.2fs",
                url, problem, attempt, self._spec.max_attempts, delay,
            )
            self._sleep(delay)
        raise TransientError(
            f"http source: GET {url} failed {self._spec.max_attempts} times; last: {problem}. "
            "The API is unavailable or rate limiting: transient, retried within the pipeline's retries.attempts"
        )

    def _read_capped(self, response: httpx.Response) -> bytes:
        """The decoded body, refused once it passes `max_page_bytes`: a huge or endless page never fills memory."""
        limit, chunks, size = self._spec.max_page_bytes, [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise SourceError(
                    f"http source: GET {response.url} sent a page of more than {limit} bytes "
                    "(source.max_page_bytes); stopped reading — ask the API for smaller pages (a page-size "
                    "param) or raise source.max_page_bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay·2^(attempt-1))], so retrying clients spread out."""
        return self._rng.uniform(0, min(self._max_delay, self._base_delay * 2 ** (attempt - 1)))


def _fill(template: str, window: Window) -> str:
    """`{start}`/`{end}` replaced by the window's bounds; other braces are left alone (they may be literal)."""
    if "{start}" not in template and "{end}" not in template:
        return template
    if window.start is None or window.end is None:
        raise SourceError(
            f"http source: {template!r} uses {{start}}/{{end}} but partition {window.key!r} has no window; "
            "declare a partition or remove the placeholders"
        )
    day_aligned = all(bound.astimezone(UTC).time() == datetime.min.time() for bound in (window.start, window.end))
    start, end = (_iso(bound, day_aligned) for bound in (window.start, window.end))
    return template.replace("{start}", start).replace("{end}", end)


def _iso(moment: datetime, day_aligned: bool) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d") if day_aligned else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _at_path(body: Any, dotted: str) -> Any:
    """The value at a dotted path (`data.items`); the body itself for an empty path; None when absent."""
    for key in filter(None, dotted.split(".")):
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (delta-seconds or HTTP-date), capped; None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    """Scheme, host and port (the default one when the URL names none): what a browser calls the origin."""
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 0)


def _show(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"


def _refuse_repeat(seen: set[str], key: str, problem: str, fix: str) -> None:
    """Remember `key`; a second sight of it means the pagination loops, which is an error rather than a hang."""
    if key in seen:
        raise SourceError(f"{problem}; stopping instead of looping forever — {fix}")
    seen.add(key)


def _digest(records: list[dict[str, Any]]) -> str:
    """A page's records, as a short fingerprint, so remembering every page costs little memory."""
    return hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()


def _snippet(content: bytes) -> str:
    text = " ".join(content.decode("utf-8", errors="replace").split())
    return repr(text[:BODY_SNIPPET_CHARS] + ("…" if len(text) > BODY_SNIPPET_CHARS else ""))


def _json_family(value: Any) -> str | None:
    return next((family for kind, family in _JSON_FAMILIES if isinstance(value, kind)), None)


def _open(spec: HttpSource, data_dir: Path, secrets: SecretResolver) -> HttpJsonSource:
    """An API has no files, so the data folder plays no part."""
    return HttpJsonSource(spec, secrets)


HTTP = SourceKind(HttpSource, _open)
