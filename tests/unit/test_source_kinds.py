"""A source kind registered from outside the package is a first-class kind: no product file names it.

`memory` below is such a kind, defined only in this module. Registered, a declaration naming it validates,
its mistakes read like any other kind's (the field, never pydantic's union tag), its runbook line renders,
its reader opens, and its SecretRef field becomes a Secret block `make apply` provisions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pytest
import yaml

from deployments import runbooks
from deployments.environments import ENVIRONMENTS
from infra.blocks import desired_blocks
from runtime.secrets import prefect_secret
from shipshape.catalog import DeclaredPipeline, load_pipeline
from shipshape.declaration_base import SecretRef
from shipshape.errors import DeclarationError
from shipshape.partitions import FULL_REFRESH, Window
from shipshape.secrets import SecretResolver, secret_refs
from shipshape.settings import PACKAGE_ROOT
from shipshape.sources.base import rows_to_batch
from shipshape.sources.factory import open_source
from shipshape.sources.kind import SourceBase, SourceKind
from shipshape.sources.registry import SOURCE_KINDS, register_source_kind, unregister_source_kind
from shipshape.sources.sql import SQL

API_KEY = SecretRef(env="SHIPSHAPE_SECRET_MEMORY_API_KEY", block="memory-api-key-{env}")


class MemorySource(SourceBase):
    """Rows written into the declaration itself."""

    kind: Literal["memory"]
    rows: list[dict[str, str]]
    api_key: SecretRef

    def describe(self) -> str:
        return f"{len(self.rows)} rows held in the declaration"


class MemoryReader:
    def __init__(self, spec: MemorySource, data_dir: Path, secrets: SecretResolver) -> None:
        self._spec = spec

    def observed_columns(self, window: Window) -> dict[str, str | None]:
        return dict.fromkeys(self._spec.rows[0])

    def batches(self, window: Window) -> Iterator[pa.RecordBatch]:
        names = list(self._spec.columns)
        yield rows_to_batch(names, [tuple(row[name] for name in names) for row in self._spec.rows])


MEMORY = SourceKind(MemorySource, MemoryReader)


@pytest.fixture
def memory_kind() -> Iterator[None]:
    register_source_kind(MEMORY)
    yield
    unregister_source_kind(MEMORY.tag)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example project's files, as the project folder, for a declaration to be written into."""
    for relative in ["checks/fct_orders.yaml", "pipelines/shop_orders/fct_orders.sql"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text((PACKAGE_ROOT / relative).read_text())
    monkeypatch.setenv("SHIPSHAPE_PROJECT_DIR", str(tmp_path))
    return tmp_path


def _declare(project: Path, **source: Any) -> Path:
    """The example declaration with its source replaced by a `memory` source (`source` overrides its fields)."""
    data = yaml.safe_load((PACKAGE_ROOT / "pipelines" / "shop_orders.yaml").read_text())
    data["source"] = {
        "kind": "memory",
        "rows": [{"order_id": "1", "email": "a@example.com"}, {"order_id": "2", "email": "b@example.com"}],
        "api_key": API_KEY.model_dump(exclude_none=True),
        "columns": {"order_id": "bigint", "email": "text"},
        **source,
    }
    file = project / "pipelines" / "shop_orders.yaml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(yaml.safe_dump(data))
    return file


def _load(project: Path, **source: Any) -> DeclaredPipeline:
    return load_pipeline(_declare(project, **source), project)


def _error(project: Path, **source: Any) -> str:
    with pytest.raises(DeclarationError) as caught:
        _load(project, **source)
    return str(caught.value)


@pytest.mark.usefixtures("memory_kind")
def test_a_registered_kind_validates_and_opens_its_reader(project: Path) -> None:
    declared = _load(project)
    assert isinstance(declared.spec.source, MemorySource)
    source = open_source(declared.spec.source, project / "data", prefect_secret)
    assert isinstance(source, MemoryReader)
    assert pa.Table.from_batches(list(source.batches(FULL_REFRESH))).to_pylist() == [
        {"order_id": "1", "email": "a@example.com"},
        {"order_id": "2", "email": "b@example.com"},
    ]


@pytest.mark.usefixtures("memory_kind")
def test_mistakes_in_a_registered_kind_name_the_field_without_its_tag(project: Path) -> None:
    wrong_type = _error(project, rows="none")
    assert "field 'source.rows': got 'none'; Input should be a valid list" in wrong_type
    assert "memory" not in wrong_type
    assert "unknown key 'source.rowz'; did you mean 'rows'?" in _error(project, rowz=[])
    assert "field 'source.api_key': got {}; give 'env' (variable name)" in _error(project, api_key={})


@pytest.mark.usefixtures("memory_kind")
def test_a_registered_kind_describes_itself_in_the_runbook(project: Path) -> None:
    assert "| Source | 2 rows held in the declaration |" in runbooks.render(_load(project))


@pytest.mark.usefixtures("memory_kind")
def test_the_secret_of_a_registered_kind_is_found_and_provisioned(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    declared = _load(project)
    assert secret_refs(declared.spec) == [API_KEY, declared.spec.pii.key]
    for variable in [
        "SHIPSHAPE_WAREHOUSE_HOST", "SHIPSHAPE_WAREHOUSE_DATABASE", "SHIPSHAPE_LOADER_PASSWORD",
        "SHIPSHAPE_PUBLISHER_PASSWORD", "SHIPSHAPE_MONITOR_PASSWORD", "SHIPSHAPE_SECRET_PII_HASH_KEY",
    ]:
        monkeypatch.setenv(variable, "x")
    monkeypatch.setenv("SHIPSHAPE_SLACK_WEBHOOK_URL", "https://hooks.slack.example/x")
    monkeypatch.setenv("SHIPSHAPE_SECRET_MEMORY_API_KEY", "memory-key")
    blocks = desired_blocks(ENVIRONMENTS["dev"])
    assert blocks["memory-api-key-dev"].get() == "memory-key"


def test_an_unregistered_kind_is_rejected_and_a_taken_tag_cannot_be_reused(project: Path) -> None:
    assert "memory" not in SOURCE_KINDS
    assert "does not match any of the expected tags: 'sql', 'file', 'http'" in _error(project)
    with pytest.raises(ValueError, match="source kind 'sql' is already registered"):
        register_source_kind(SQL)
