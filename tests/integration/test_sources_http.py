"""HTTP source against a real local JSON API: paginations, window placeholders, token, retries, errors, drift."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from runtime.secrets import prefect_secret
from shipshape.declaration_base import SecretRef
from shipshape.errors import SchemaDriftError, SourceError, TransientError
from shipshape.partitions import FULL_REFRESH, Window
from shipshape.sources.base import CHUNK_ROWS
from shipshape.sources.factory import check_drift
from shipshape.sources.http import MAX_RETRY_AFTER_SECONDS, HttpJsonSource, HttpSource
from tests.support.http_api import Fault, JsonApi, refused_url, serve_json_api
from tests.support.tls import localhost_tls

JAN_2 = Window("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC))
COLUMNS = {"id": "bigint", "amount": "double", "status": "text"}
RECORDS = [{"id": i, "amount": i * 1.5, "status": "paid", "internal": "secret"} for i in range(1, 6)]
BASE_DELAY = 0.01
CURSOR = {"type": "cursor", "cursor_field": "meta.next_cursor"}
# (endpoint, records_path, pagination, requests needed for 5 records at 2 per page)
PAGINATIONS = {
    "cursor": ("/cursor", "data.items", CURSOR, 3),
    "page_number": ("/pages", "results", {"type": "page_number"}, 4),
    "link_header": ("/links", "", {"type": "link_header"}, 3),
    "none": ("/records", "", None, 1),
}


class _CeilingJitter(random.Random):
    """Always the top of the jitter range, so backoff delays are exact."""

    def uniform(self, low: float, high: float) -> float:
        return high


@pytest.fixture
def api() -> Iterator[JsonApi]:
    with serve_json_api(RECORDS, page_size=2) as running:
        yield running


@pytest.fixture
def delays() -> list[float]:
    """The waits the source asked for, in order (its injected `sleep`)."""
    return []


def _spec(api: JsonApi, style: str = "none", **fields: Any) -> HttpSource:
    path, records_path, pagination, _ = PAGINATIONS[style]
    return HttpSource(
        kind="http", url=fields.pop("url", api.url(path)), records_path=records_path, pagination=pagination,
        columns=fields.pop("columns", COLUMNS), **fields,
    )


def _source(spec: HttpSource, delays: list[float], *, chunk_rows: int = CHUNK_ROWS, **options: Any) -> HttpJsonSource:
    return HttpJsonSource(
        spec, prefect_secret, chunk_rows=chunk_rows, base_delay=BASE_DELAY, sleep=delays.append,
        rng=_CeilingJitter(), **options,
    )


def _read(source: HttpJsonSource, window: Window = JAN_2) -> pa.Table:
    return pa.Table.from_batches(list(source.batches(window)))


@pytest.mark.parametrize("style", PAGINATIONS)
def test_every_pagination_style_reads_each_record_once(api: JsonApi, delays: list[float], style: str) -> None:
    table = _read(_source(_spec(api, style), delays))

    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5]
    assert len(api.requests) == PAGINATIONS[style][3]


def test_cursor_pagination_sends_each_next_cursor_until_it_is_null(api: JsonApi, delays: list[float]) -> None:
    _read(_source(_spec(api, "cursor"), delays))

    assert [request.query.get("cursor") for request in api.requests] == [None, "after-2", "after-4"]


def test_page_number_pagination_counts_from_first_page_until_an_empty_page(api: JsonApi, delays: list[float]) -> None:
    _read(_source(_spec(api, "page_number"), delays))

    assert [request.query["page"] for request in api.requests] == ["1", "2", "3", "4"]


def test_link_header_pagination_follows_next_links_with_their_query(api: JsonApi, delays: list[float]) -> None:
    _read(_source(_spec(api, "link_header", params={"since": "{start}"}), delays))

    assert [request.query for request in api.requests] == [
        {"since": "2024-01-02"}, {"since": "2024-01-02", "offset": "2"}, {"since": "2024-01-02", "offset": "4"},
    ]


def test_day_window_fills_url_and_params_with_dates(api: JsonApi, delays: list[float]) -> None:
    spec = _spec(api, url=api.url("/records?from={start}"), params={"to": "{end}", "fixed": "x"})

    _read(_source(spec, delays))

    assert api.requests[0].query == {"from": "2024-01-02", "to": "2024-01-03", "fixed": "x"}


def test_hour_window_fills_placeholders_with_iso_utc_timestamps(api: JsonApi, delays: list[float]) -> None:
    hour = Window("2024-01-02T05", datetime(2024, 1, 2, 5, tzinfo=UTC), datetime(2024, 1, 2, 6, tzinfo=UTC))

    _read(_source(_spec(api, params={"from": "{start}", "to": "{end}"}), delays), hour)

    assert api.requests[0].query == {"from": "2024-01-02T05:00:00Z", "to": "2024-01-02T06:00:00Z"}


def test_placeholders_without_a_window_are_a_source_error(api: JsonApi, delays: list[float]) -> None:
    with pytest.raises(SourceError, match="no window"):
        _read(_source(_spec(api, params={"from": "{start}"}), delays), FULL_REFRESH)
    assert api.requests == []


def test_only_declared_keys_become_columns_and_missing_keys_are_null(delays: list[float]) -> None:
    records = [{"id": 1, "status": "paid", "internal": "secret"}, {"id": 2, "amount": 3.5}]
    with serve_json_api(records) as api:
        table = _read(_source(_spec(api), delays))

    assert table.schema.names == ["id", "amount", "status"]
    assert table.to_pylist() == [
        {"id": 1, "amount": None, "status": "paid"}, {"id": 2, "amount": 3.5, "status": None},
    ]


def test_column_with_mixed_value_types_arrives_as_text(delays: list[float]) -> None:
    with serve_json_api([{"id": 1, "amount": 1.5}, {"id": 2, "amount": "n/a"}]) as api:
        table = _read(_source(_spec(api), delays))

    assert table.column("amount").to_pylist() == ["1.5", "n/a"]
    assert table.column("id").to_pylist() == [1, 2]


def test_batches_never_exceed_chunk_rows_across_pages(delays: list[float]) -> None:
    with serve_json_api(RECORDS, page_size=3) as api:
        batches = list(_source(_spec(api, "cursor"), delays, chunk_rows=2).batches(JAN_2))

    assert [batch.num_rows for batch in batches] == [2, 2, 1]


def test_bearer_token_is_sent_on_every_request_and_never_logged(
    delays: list[float], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SHIPSHAPE_SECRET_ORDERS_API_TOKEN", "s3cret-token")
    caplog.set_level(logging.DEBUG)
    with serve_json_api(RECORDS, page_size=2, token="s3cret-token") as api:
        api.fail_next(1, 503)
        table = _read(_source(_spec(api, "cursor", token=SecretRef(env="SHIPSHAPE_SECRET_ORDERS_API_TOKEN")), delays))

    assert table.num_rows == 5
    assert {request.headers["authorization"] for request in api.requests} == {"Bearer s3cret-token"}
    assert "s3cret-token" not in caplog.text


def test_429_waits_for_retry_after_seconds_then_succeeds(api: JsonApi, delays: list[float]) -> None:
    api.fail_next(2, 429, retry_after="7")

    table = _read(_source(_spec(api), delays))

    assert delays == [7.0, 7.0]
    assert table.num_rows == 5


def test_429_waits_until_a_retry_after_http_date(api: JsonApi, delays: list[float]) -> None:
    api.fail_next(1, 429, retry_after=format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True))

    _read(_source(_spec(api), delays))

    assert len(delays) == 1
    assert 28 <= delays[0] <= 30


def test_429_retry_after_is_capped(api: JsonApi, delays: list[float]) -> None:
    api.fail_next(1, 429, retry_after="3600")

    _read(_source(_spec(api), delays))

    assert delays == [MAX_RETRY_AFTER_SECONDS]


def test_429_without_retry_after_backs_off(api: JsonApi, delays: list[float]) -> None:
    api.fail_next(2, 429)

    _read(_source(_spec(api), delays))

    assert delays == [BASE_DELAY, 2 * BASE_DELAY]


def test_5xx_is_retried_with_doubling_backoff_then_succeeds(api: JsonApi, delays: list[float]) -> None:
    api.fail_next(1, 500)
    api.fail_next(2, 503)

    table = _read(_source(_spec(api, "cursor"), delays))

    assert delays == [BASE_DELAY, 2 * BASE_DELAY, 4 * BASE_DELAY]
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5]


def test_backoff_is_capped_at_max_delay(api: JsonApi, delays: list[float]) -> None:
    api.fail_next(4, 502)

    _read(_source(_spec(api), delays, max_delay=2 * BASE_DELAY))

    assert delays == [BASE_DELAY, 2 * BASE_DELAY, 2 * BASE_DELAY, 2 * BASE_DELAY]


def test_backoff_jitter_stays_within_the_doubling_ceiling(api: JsonApi, delays: list[float]) -> None:
    api.fail_next(5, 503)
    spec = _spec(api)

    _read(HttpJsonSource(spec, prefect_secret, base_delay=1.0, sleep=delays.append))

    assert len(delays) == 5
    assert all(0 <= delay <= 2**attempt for attempt, delay in enumerate(delays))


def test_dropped_connection_is_retried(api: JsonApi, delays: list[float]) -> None:
    api.fail_next(1, "drop")

    assert _read(_source(_spec(api), delays)).num_rows == 5
    assert delays == [BASE_DELAY]


def test_read_timeout_is_retried(api: JsonApi, delays: list[float]) -> None:
    api.fail_next(1, "hang")

    assert _read(_source(_spec(api, timeout_seconds=0.2), delays)).num_rows == 5
    assert delays == [BASE_DELAY]


def test_exhausted_retries_raise_transient_error_naming_url_and_last_status(api: JsonApi, delays: list[float]) -> None:
    api.fail_next(10, 503)

    with pytest.raises(TransientError, match=r"GET .*/records failed 3 times; last: HTTP 503"):
        _read(_source(_spec(api, max_attempts=3), delays))
    assert len(api.requests) == 3
    assert len(delays) == 2


def test_unreachable_api_raises_transient_error(delays: list[float]) -> None:
    spec = HttpSource(kind="http", url=refused_url(), columns=COLUMNS, max_attempts=2)

    with pytest.raises(TransientError, match="ConnectError"):
        _read(_source(spec, delays))
    assert len(delays) == 1


@pytest.mark.parametrize(
    ("server_token", "path", "status", "hint"),
    [("right", "/records", 401, "check the token"), (None, "/missing", 404, "check source.url")],
)
def test_client_errors_fail_at_once_without_retry(
    delays: list[float], monkeypatch: pytest.MonkeyPatch, server_token: str | None, path: str, status: int, hint: str
) -> None:
    monkeypatch.setenv("SHIPSHAPE_SECRET_ORDERS_API_TOKEN", "wrong")
    with serve_json_api(RECORDS, token=server_token) as api:
        spec = _spec(api, url=api.url(path), token=SecretRef(env="SHIPSHAPE_SECRET_ORDERS_API_TOKEN"))
        with pytest.raises(SourceError) as raised:
            _read(_source(spec, delays))

    assert f"{api.url(path)} answered {status}" in str(raised.value)
    assert hint in str(raised.value)
    assert '"error"' in str(raised.value)
    assert len(api.requests) == 1
    assert delays == []


def test_non_json_body_is_a_source_error(api: JsonApi, delays: list[float]) -> None:
    api.fail_next(1, 200, body="<html>maintenance</html>")

    with pytest.raises(SourceError, match=r"did not return JSON.*maintenance"):
        _read(_source(_spec(api), delays))


def test_wrong_records_path_is_a_source_error_naming_it(api: JsonApi, delays: list[float]) -> None:
    spec = _spec(api, "cursor").model_copy(update={"records_path": "data.rows"})

    with pytest.raises(SourceError, match=r"records_path 'data\.rows'"):
        _read(_source(spec, delays))


def test_observed_columns_come_from_the_first_page_only(delays: list[float]) -> None:
    records = [
        {"id": 1, "amount": None, "day": "2024-01-02", "paid": True},
        {"id": 2, "amount": 2.5, "tags": ["a"], "address": {"city": "Oslo"}},
        {"id": 3, "late_key": 1},
    ]
    with serve_json_api(records, page_size=2) as api:
        observed = _source(_spec(api, "cursor"), delays).observed_columns(JAN_2)

    assert observed == {
        "id": "integer", "amount": "number", "day": None, "paid": "boolean", "tags": "json", "address": "json",
    }
    assert len(api.requests) == 1


def test_empty_first_page_observes_the_declared_columns_untyped(delays: list[float]) -> None:
    with serve_json_api([]) as api:
        observed = _source(_spec(api, "cursor"), delays).observed_columns(JAN_2)

    assert observed == {"id": None, "amount": None, "status": None}


def test_drift_renamed_key_is_reported_and_new_key_returned(delays: list[float]) -> None:
    declared = HttpSource(kind="http", url="x", columns=COLUMNS).column_types()
    with serve_json_api([{"id": 1, "amount": 2.5, "state": "paid"}]) as api:
        observed = _source(_spec(api), delays).observed_columns(JAN_2)

    with pytest.raises(SchemaDriftError, match="column 'status' declared as text is missing from orders api"):
        check_drift(declared, observed, "orders api")
    assert check_drift(declared, {**observed, "status": None}, "orders api") == ["state"]


# A hostile or broken API: the token stays on the declared origin, and no page, nor number of pages, is unbounded.

TOKEN = SecretRef(env="SHIPSHAPE_SECRET_ORDERS_API_TOKEN")


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SHIPSHAPE_SECRET_ORDERS_API_TOKEN", "s3cret-token")
    return "Bearer s3cret-token"


def _first_page_links_to(api: JsonApi, next_url: str) -> None:
    """The first `/links` page (only the first: a loop would hang the source on main) names `next_url` as next."""
    api.script_page("/links", {}, Fault(200, {"Link": f'<{next_url}>; rel="next"'}, json.dumps(RECORDS[:2])), times=1)


def test_a_next_link_to_another_origin_is_refused_and_that_origin_gets_nothing(
    delays: list[float], token: str
) -> None:
    with serve_json_api(RECORDS, token="s3cret-token") as api, serve_json_api(RECORDS) as elsewhere:
        _first_page_links_to(api, elsewhere.url("/links?offset=2"))
        with pytest.raises(SourceError, match=r"on another origin than source\.url") as refused:
            _read(_source(_spec(api, "link_header", token=TOKEN), delays))

    assert elsewhere.url("/links?offset=2") in str(refused.value)
    assert elsewhere.requests == []
    assert [request.headers.get("authorization") for request in api.requests] == [token]


def test_a_next_link_downgraded_to_http_on_the_same_port_is_refused_before_the_token_leaves_in_clear(
    delays: list[float], token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_tls, certificate = localhost_tls(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    with serve_json_api(RECORDS, token="s3cret-token", tls=server_tls) as api:
        _first_page_links_to(api, api.url("/links?offset=2").replace("https://", "http://"))
        with pytest.raises(SourceError, match=r"on another origin than source\.url"):
            _read(_source(_spec(api, "link_header", token=TOKEN), delays))

    assert [(request.over_tls, request.headers.get("authorization")) for request in api.requests] == [(True, token)]


def test_a_redirect_to_another_origin_is_followed_without_the_token(delays: list[float], token: str) -> None:
    """httpx drops Authorization on a redirect leaving the origin; this holds it, as the token is per request."""
    with serve_json_api(RECORDS, token="s3cret-token") as api, serve_json_api(RECORDS) as elsewhere:
        api.script_page("/records", {}, Fault(302, {"Location": elsewhere.url("/records")}))
        table = _read(_source(_spec(api, token=TOKEN), delays))

    assert table.num_rows == 5
    assert [request.headers.get("authorization") for request in api.requests] == [token]
    assert [request.headers.get("authorization") for request in elsewhere.requests] == [None]


def test_a_page_over_max_page_bytes_is_refused(api: JsonApi, delays: list[float]) -> None:
    with pytest.raises(SourceError, match=r"a page of more than 64 bytes \(source\.max_page_bytes\)"):
        _read(_source(_spec(api, max_page_bytes=64), delays))


def test_an_endless_page_is_cut_off_at_max_page_bytes_while_it_streams(api: JsonApi, delays: list[float]) -> None:
    """The body never ends, so only a reader that counts as it streams can stop (reading it whole never returns)."""
    api.script_page("/records", {}, Fault("endless"))
    with pytest.raises(SourceError, match=r"a page of more than 1048576 bytes \(source\.max_page_bytes\)"):
        _read(_source(_spec(api, max_page_bytes=1024 * 1024), delays))


def test_max_pages_stops_an_api_that_keeps_paging(api: JsonApi, delays: list[float]) -> None:
    with pytest.raises(SourceError, match=r"page 2 still has a next page, and source\.max_pages is 2"):
        _read(_source(_spec(api, "cursor", max_pages=2), delays))


def test_max_pages_allows_exactly_that_many_pages(api: JsonApi, delays: list[float]) -> None:
    assert _read(_source(_spec(api, "cursor", max_pages=3), delays)).num_rows == 5


def test_a_cursor_seen_two_pages_ago_stops_the_read(api: JsonApi, delays: list[float]) -> None:
    def page_with_cursor(cursor: str) -> Fault:
        return Fault(200, body=json.dumps({"data": {"items": RECORDS[:1]}, "meta": {"next_cursor": cursor}}))

    # a → b → a: never the cursor just given, so only memory of every cursor catches it (two rounds at most).
    api.script_page("/cursor", {"cursor": "a"}, page_with_cursor("b"), times=2)
    api.script_page("/cursor", {"cursor": "b"}, page_with_cursor("a"), times=2)
    api.script_page("/cursor", {}, page_with_cursor("a"), times=1)
    with pytest.raises(SourceError, match="returned cursor 'a' a second time; stopping instead of looping forever"):
        _read(_source(_spec(api, "cursor"), delays))


def test_a_next_link_back_to_the_first_page_stops_the_read(api: JsonApi, delays: list[float]) -> None:
    api.script_page("/links", {"offset": "2"}, Fault(200, {"Link": f'<{api.url("/links")}>; rel="next"'}, "[]"),
                    times=1)
    with pytest.raises(SourceError, match="a page already read, as next; stopping instead of looping forever"):
        _read(_source(_spec(api, "link_header"), delays))


def test_page_numbers_the_api_ignores_stop_with_an_error(api: JsonApi, delays: list[float]) -> None:
    api.script_page("/records", {"page": "4"}, Fault(200, body="[]"))  # on main, ends the otherwise endless read
    spec = HttpSource(kind="http", url=api.url("/records"), pagination={"type": "page_number"}, columns=COLUMNS)
    with pytest.raises(SourceError, match=r"/records\?page=2 returned the records of an earlier page"):
        _read(_source(spec, delays))
