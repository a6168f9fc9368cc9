"""Reads JSON records from an HTTP API, page by page, retrying only what can succeed on a second try.

Window placeholders: `{start}` and `{end}` in the URL and in params become the window's bounds —
`YYYY-MM-DD` when both bounds fall on midnight UTC (day partitions), otherwise ISO 8601 UTC like
`2024-01-31T05:00:00Z`. `{end}` is exclusive, as windows are half-open.

Retries: 429 waits for Retry-After (capped), 5xx and network faults back off exponentially with full
jitter; any other 4xx is a mistake retrying cannot fix and fails at once. Pages stream into
batches of at most `chunk_rows` records, so memory holds one page and one batch.
"""

from __future__ import annotations

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

    def describe(self) -> str:
        return f"HTTP JSON API `{self.url}`"


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
        """Each page's records, following the declared pagination until it says there is nothing more."""
        pagination = self._spec.pagination
        url = httpx.URL(_fill(self._spec.url, window))
        params: dict[str, Any] = {name: _fill(value, window) for name, value in self._spec.params.items()}
        if isinstance(pagination, PageNumberPagination):
            params[pagination.page_param] = pagination.first_page
        with self._client() as client:
            while True:
                # Merged here: httpx's own `params=` would replace a query string written into source.url.
                page = self._get_page(client, url.copy_merge_params(params))
                yield page
                if isinstance(pagination, CursorPagination):
                    cursor = _at_path(page.body, pagination.cursor_field)
                    if cursor in (None, ""):
                        return
                    if cursor == params.get(pagination.cursor_param):
                        raise SourceError(
                            f"http source: GET {page.response.url} returned the cursor it was given ({cursor!r}); "
                            f"stopping instead of looping forever — check pagination.cursor_field"
                        )
                    params[pagination.cursor_param] = cursor
                elif isinstance(pagination, PageNumberPagination):
                    if not page.records:
                        return
                    params[pagination.page_param] += 1
                elif isinstance(pagination, LinkHeaderPagination) and "next" in page.response.links:
                    # The next link carries its own query string; sending params again would duplicate them.
                    url, params = page.response.url.join(page.response.links["next"]["url"]), {}
                else:
                    return

    def _client(self) -> httpx.Client:
        headers = {"Accept": "application/json"}
        if self._spec.token is not None:
            headers["Authorization"] = f"Bearer {self._secrets(self._spec.token, 'http source token')}"
        return httpx.Client(headers=headers, timeout=self._spec.timeout_seconds, follow_redirects=True)

    def _get_page(self, client: httpx.Client, url: httpx.URL) -> _Page:
        response = self._get(client, url)
        try:
            body = response.json()
        except ValueError:
            raise SourceError(
                f"http source: GET {response.url} did not return JSON: {_snippet(response)}; check source.url"
            ) from None
        records = _at_path(body, self._spec.records_path)
        if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
            raise SourceError(
                f"http source: GET {response.url}: records_path {self._spec.records_path!r} does not lead to a list "
                f"of JSON objects; body starts {_snippet(response)}"
            )
        return _Page(records, body, response)

    def _get(self, client: httpx.Client, url: httpx.URL) -> httpx.Response:
        """One GET with retries: 429 and 5xx and network faults are retried, other 4xx fail at once."""
        for attempt in range(1, self._spec.max_attempts + 1):
            try:
                response = client.get(url)
            except _NETWORK_FAULTS as error:
                problem, delay = f"{type(error).__name__}: {error}", self._backoff(attempt)
            except httpx.HTTPError as error:
                raise SourceError(f"http source: GET {url} cannot be sent: {error}; check source.url") from error
            else:
                if response.is_success:
                    return response
                status = response.status_code
                if status != 429 and status < 500:
                    hint = _FIX_HINTS.get(status, "fix the request in the declaration")
                    raise SourceError(
                        f"http source: GET {response.url} answered {status} {response.reason_phrase}: "
                        f"{_snippet(response)} — {hint} (not retried)"
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


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return repr(text[:BODY_SNIPPET_CHARS] + ("…" if len(text) > BODY_SNIPPET_CHARS else ""))


def _json_family(value: Any) -> str | None:
    return next((family for kind, family in _JSON_FAMILIES if isinstance(value, kind)), None)


def _open(spec: HttpSource, data_dir: Path, secrets: SecretResolver) -> HttpJsonSource:
    """An API has no files, so the data folder plays no part."""
    return HttpJsonSource(spec, secrets)


HTTP = SourceKind(HttpSource, _open)
