"""PostgreSQL sessions time out: connecting, a statement, a lock wait — each ends in a TransientError within its
setting, while the destination lock (a publish waiting for another publish) waits past `lock_timeout`."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from shipshape.errors import ConfigurationError, TransientError
from shipshape.warehouses import AUDIT_SCHEMA, open_warehouse


def one_second(monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    """That one timeout set to 1 s; the others keep their (longer) defaults."""
    monkeypatch.setenv(f"SHIPSHAPE_WAREHOUSE_{which}_TIMEOUT_SECONDS", "1")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A PostgreSQL URL whose port accepts TCP connections and never says a word (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"postgresql://postgres@127.0.0.1:{listener.getsockname()[1]}/nothing"


def _ends_within(seconds: float, started: float) -> None:
    assert time.monotonic() - started < seconds


def test_connecting_to_a_server_that_never_answers_gives_up_at_connect_timeout(
    monkeypatch: pytest.MonkeyPatch, silent_server: str
) -> None:
    one_second(monkeypatch, "CONNECT")
    started = time.monotonic()
    with pytest.raises(TransientError, match="timeout"):
        open_warehouse(silent_server)
    _ends_within(10, started)


def test_a_statement_past_statement_timeout_is_cancelled(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> None:
    one_second(monkeypatch, "STATEMENT")
    started = time.monotonic()
    with open_warehouse(postgres_url) as warehouse, pytest.raises(TransientError, match="statement timeout"):
        warehouse.execute("SELECT pg_sleep(60)")
    _ends_within(10, started)


def test_a_table_lock_wait_past_lock_timeout_fails_and_may_be_retried(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    one_second(monkeypatch, "LOCK")
    with open_warehouse(postgres_url) as holder, open_warehouse(postgres_url) as waiter:
        holder.ensure_schema(AUDIT_SCHEMA)
        holder.execute(f"CREATE TABLE {AUDIT_SCHEMA}.busy (id bigint)")
        with holder.transaction():
            holder.execute(f"LOCK TABLE {AUDIT_SCHEMA}.busy IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(TransientError, match="lock timeout"):
                waiter.execute(f"INSERT INTO {AUDIT_SCHEMA}.busy VALUES (1)")


def test_a_publish_waits_for_another_publish_of_the_table_past_lock_timeout(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    one_second(monkeypatch, "LOCK")
    acquired = threading.Event()
    errors: list[BaseException] = []

    def second_publish() -> None:
        try:
            with open_warehouse(postgres_url) as waiter, waiter.transaction():
                waiter.hold_until_commit("analytics.fct_orders")
                acquired.set()
        except BaseException as error:  # the assertion below reports it
            errors.append(error)
            acquired.set()

    with open_warehouse(postgres_url) as first, first.transaction():
        first.hold_until_commit("analytics.fct_orders")
        thread = threading.Thread(target=second_publish)
        thread.start()
        assert not acquired.wait(3), errors  # three lock_timeouts long: still waiting, not failed
    assert acquired.wait(10) and not errors
    thread.join()


def test_a_bad_timeout_setting_names_the_variable_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    monkeypatch.setenv("SHIPSHAPE_WAREHOUSE_LOCK_TIMEOUT_SECONDS", "1m")
    with pytest.raises(ConfigurationError) as caught:
        open_warehouse(postgres_url)
    assert str(caught.value) == (
        "SHIPSHAPE_WAREHOUSE_LOCK_TIMEOUT_SECONDS='1m' is not a timeout: give a whole number of seconds above 0, "
        "or unset it (default 60)"
    )
