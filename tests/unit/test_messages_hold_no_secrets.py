"""No PII, password or markup from a run in a message: reject reasons, driver errors, Slack alerts (SECURITY.md)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
from prefect.server.utilities.user_templates import render_user_template_sync

from shipshape.alerts import run_state_alerts, run_value
from shipshape.column_types import ColumnType
from shipshape.convert import BatchConverter
from shipshape.declaration import Rejects
from shipshape.errors import ConfigurationError, RejectThresholdError, ShipshapeError
from shipshape.partitions import FULL_REFRESH
from shipshape.pii import PiiMasker
from shipshape.redact import mask_credentials
from shipshape.rejects import enforce_threshold
from shipshape.sources.sql import SqlSource, SqlTableSource
from shipshape.warehouses import open_warehouse

SSN = "123-45-6789"
PASSWORD = "s3cr%zzet-canary"  # not valid percent-encoding: libpq quotes it back in its error


@pytest.mark.parametrize("rule", ["drop", "hash"])
def test_a_reject_reason_names_column_and_type_never_the_value(rule: str) -> None:
    masker = PiiMasker({"ssn": rule}, "unit-test-key")  # type: ignore[dict-item]
    converter = BatchConverter({"ssn": ColumnType.parse("bigint")}, redact=masker.mask_record)

    _, (rejected,) = converter.convert(pa.RecordBatch.from_pydict({"ssn": [SSN]}))
    with pytest.raises(RejectThresholdError) as raised:
        enforce_threshold(Rejects(), 1, 0, rejected.reason, where="pipeline p, partition 2026-11-05", run_tag="r")

    assert rejected.reason == "column 'ssn': value is not a valid bigint"
    assert json.loads(rejected.raw_record) == masker.mask_record({"ssn": SSN})
    assert SSN not in rejected.raw_record + str(raised.value)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://loader:s3cr3t@db:5432/x", "postgresql://loader:***@db:5432/x"),
        ("invalid dsn: host=db password=s3cr3t user=x", "invalid dsn: host=db password=*** user=x"),
        ("host=db password='a b\\'c' port=x", "host=db password=*** port=x"),
        ("postgresql://u@h/db?sslpassword=zz&x=1", "postgresql://u@h/db?sslpassword=***&x=1"),
        ("postgresql://user@host/db and http://host/a:b@c", "postgresql://user@host/db and http://host/a:b@c"),
    ],
)
def test_credentials_in_text_are_masked(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked


def test_a_password_fragment_libpq_quotes_back_is_masked() -> None:
    with pytest.raises(ShipshapeError) as raised:
        open_warehouse(f"postgresql://loader:{PASSWORD}@127.0.0.1:5432/warehouse")
    assert str(raised.value).startswith('PostgreSQL: invalid percent-encoded token: "***"')
    assert "s3cr" not in str(raised.value)


def test_an_unsupported_warehouse_url_is_echoed_without_its_password() -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_warehouse(f"mysql://loader:{PASSWORD}@db/warehouse")
    assert "SHIPSHAPE_WAREHOUSE_URL='mysql://loader:***@db/warehouse' is not supported" in str(raised.value)


def test_a_sql_source_connection_error_holds_no_password(tmp_path: Path) -> None:
    spec = SqlSource(kind="sql", url=f"postgresql://reader:{PASSWORD}@127.0.0.1:5432/shop", table="orders",
                     columns={"id": "bigint"})
    with pytest.raises(ShipshapeError) as raised:
        SqlTableSource(spec, tmp_path, lambda ref, purpose: "").observed_columns(FULL_REFRESH)
    assert "s3cr" not in str(raised.value)
    assert "reader:***@127.0.0.1" in str(raised.value)


HOSTILE = "boom <!channel> <https://evil.example/rerun|Re-run here> & <@U024BE7LH>"
ESCAPED = "boom &lt;!channel&gt; &lt;https://evil.example/rerun|Re-run here&gt; &amp; &lt;@U024BE7LH&gt;"


def test_run_text_in_a_slack_alert_cannot_ping_or_link() -> None:
    flow_run = SimpleNamespace(name="shop_orders 2026-11-05", state=SimpleNamespace(name="Failed", message=HOSTILE))
    details = [
        render_user_template_sync(trigger.detail, {"flow_run": flow_run})
        for _, trigger in run_state_alerts()
        if trigger.detail
    ]
    event = {"payload": {"summary": HOSTILE}}
    summary = render_user_template_sync(run_value("event.payload.summary"), {"event": event})

    assert details == [f"Error: {ESCAPED}", f"Failed checks: {ESCAPED}"]
    assert summary == ESCAPED
