"""The audit gate of write-audit-publish: a pipeline's Soda contract must pass on the audit table before publishing.

One contract file per published table (in `checks/`, written by the pipeline's owner) runs unchanged on DuckDB
and PostgreSQL, points at the published table when read or run by hand, and is run by this module against the
audit table. The form that achieves all three (verified with Soda Core 4.28.0 on both engines):

    dataset: warehouse/${var.dataset_path}        # exactly this line: enforced, see below
    variables:
      dataset_path:
        default: analytics/fct_orders             # <schema>/<table> of the published table
    columns: ...                                  # see checks/fct_orders.yaml for a complete contract

Why the variable holds the whole path: Soda names a dataset `<data source>/<database>/<schema>/<table>` on
PostgreSQL but `<data source>/<schema>/<table>` on DuckDB, and with the DuckDB form on PostgreSQL the `schema`
check is silently NOT_EVALUATED. `${var.dataset_path}` may contain slashes, so this module passes the path the
warehouse adapter's `SodaTarget` gives (`<database>/<schema>/<table>` or `<schema>/<table>`, as the engine needs;
the targets live with their adapters in `shipshape.warehouses`); the default is the DuckDB form, the
embedded default warehouse. The data source is always named `warehouse`. A contract whose `dataset` is anything
else is rejected, because a hard-coded table name would make the gate verify the published table (yesterday's
data) instead of the audit table and pass without looking at what is about to be published.

`data_type` is compared by Soda per engine, through that engine's own synonym list, not by a shared vocabulary.
The spellings that match the same column on both engines (portable type of `shipshape.column_types` on the left):

    integer -> integer           bigint -> bigint        decimal(p,s) -> decimal + numeric_precision/numeric_scale
    double -> double precision   boolean -> boolean      text -> text            date -> date
    timestamp -> timestamp       timestamptz -> timestamp with time zone

Traps: `double` and `varchar` fail on PostgreSQL, `timestamptz` fails on both engines. DuckDB treats every
integer and decimal name as one synonym group, so on DuckDB `integer`, `bigint` and `decimal` only assert "a
number"; only `decimal` with precision and scale is exact there. The exact integer width on DuckDB is therefore
guaranteed by the loader, which creates the audit table from the declared column types, not by this gate.

The gate is strict: publishing needs every check PASSED, except checks whose threshold has `level: warn`, which
may warn. FAILED, NOT_EVALUATED and any error Soda logs while running (missing table, missing column, connection
refused) block. A contract that Soda cannot read, or reads with a warning (a misspelt threshold key is ignored
with only a warning; a threshold with two flat comparisons leaves its check silently unevaluated), raises
`DeclarationError` before any data is read: those are mistakes in the file, not in the data.

Soda Core is not thread-safe (it shares one YAML parser), so every verification holds one module-level lock.
Its telemetry is switched off before it is imported, and it is imported lazily: importing it costs 0.3-0.9 s and
pipelines that never audit should not pay. Soda loads a `.env` file it finds above its install location into
the environment (without overriding variables already set); keep secrets out of a project-level `.env`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import yaml

from shipshape.contract_sql import custom_sql_problems
from shipshape.errors import DeclarationError

if TYPE_CHECKING:
    from soda_core.common.data_source_impl import DataSourceImpl
    from soda_core.contracts.contract_verification import CheckResult, ContractVerificationResult, Threshold

os.environ["SODA_CORE_TELEMETRY_ENABLED"] = "false"

DATA_SOURCE_NAME = "warehouse"
DATASET_VARIABLE = "dataset_path"
DATASET_LINE = f"{DATA_SOURCE_NAME}/${{var.{DATASET_VARIABLE}}}"

_LOCK = threading.Lock()

_OUTCOMES = {"PASSED": "passed", "WARN": "warned", "FAILED": "failed"}


@dataclass(frozen=True)
class CheckOutcome:
    """One check's result, flat and JSON-serialisable (`dataclasses.asdict`) for run records and messages."""

    name: str  # "amount invalid", "row_count", "contract" for problems that belong to no single check
    column: str | None
    check_type: str
    outcome: str  # "passed" | "failed" | "warned" | "error" | "not_evaluated"
    blocking: bool
    measured: float | int | None  # the value compared with the threshold: a count, a percent, hours of age
    detail: str  # Soda's diagnostics (counts, percents, column differences) or the error, in one line
    threshold: str = ""  # "must be 0", "warn: must be less than 5"; empty for problems that have none

    def as_row(self) -> dict[str, object]:
        """A flat dict for table artifacts and run records."""
        return asdict(self)


@dataclass(frozen=True)
class AuditResult:
    """All outcomes of one verification; publishing is allowed only when `passed`."""

    checks: list[CheckOutcome]

    @property
    def passed(self) -> bool:
        return not any(check.blocking for check in self.checks)

    def failed_summary(self) -> str:
        """The blocking outcomes in one line, e.g. "amount invalid=3 (must be 0); status invalid=1 (must be 0)"."""
        blocking = [check for check in self.checks if check.blocking]
        # Errors first: a missing table or a refused connection is the cause of everything else not evaluated.
        return "; ".join(_summarize(check) for check in sorted(blocking, key=lambda check: check.outcome != "error"))


def _summarize(check: CheckOutcome) -> str:
    if check.outcome == "error":
        return f"{check.name} error: {check.detail}"
    if check.outcome == "not_evaluated":
        return f"{check.name} not evaluated"
    summary = f"{check.name}={check.measured} ({check.threshold or check.detail})"
    # A schema failure's count says nothing on its own: which columns differ is the message.
    return f"{summary}: {check.detail}" if check.check_type == "schema" else summary


class SodaTarget(Protocol):
    """How the gate reaches a warehouse: each adapter's `soda_target()` gives one (see `shipshape.warehouses`)."""

    def dataset_path(self, schema: str, table: str) -> str:
        """The `${var.dataset_path}` value naming `schema.table` for this engine's Soda data source."""
        ...

    def data_source(self) -> AbstractContextManager[DataSourceImpl]:
        """Soda's data source, named `DATA_SOURCE_NAME`, open for one verification."""
        ...


def import_soda() -> None:
    """Soda Core, before its plugins (the other order warns about a circular import); a second call costs nothing.

    Its import takes 1-2 s: a command imports it ahead of its first audit while it waits for something else."""
    import soda_core.contracts  # noqa: F401


@contextmanager
def _soda() -> Iterator[None]:
    """Serialise Soda, import it, and leave no Soda log capture behind in the calling thread.

    Soda Core is imported before its plugins (the other order warns about a circular import). The `soda` logger
    must stay at WARNING or lower: Soda finds its own errors by capturing its log records, so a level above ERROR
    would make a broken contract look like a passing one. Soda also leaves its log collector active in the
    thread after a run, where it would keep every later log record of that thread; it is reset on the way out.
    """
    with _LOCK:
        import_soda()
        from soda_core.common.logs import preserve_active_logs

        logging.getLogger("soda").setLevel(logging.WARNING)
        with preserve_active_logs():
            yield


def check_contract(contract_path: Path) -> None:
    """Raise `DeclarationError` unless the contract can gate publishing; reads no data.

    Usable on its own (CI, loading declarations) and run first by `verify_contract`.
    """
    text = _read(contract_path)
    with _soda():
        _check_contract(contract_path, text)


def verify_contract(
    contract_path: Path,
    target: SodaTarget,
    schema: str,
    table: str,
    data_timestamp: datetime,
) -> AuditResult:
    """Run the contract against `schema.table` (the audit table) and say whether it may be published.

    `data_timestamp` is the "now" of freshness checks: pass the partition's end, so that re-running an old
    partition is judged as it would have been on time. It must carry a time zone (a naive one is ambiguous).
    """
    if data_timestamp.tzinfo is None:
        raise ValueError("data_timestamp must be timezone-aware")
    text = _read(contract_path)
    with _soda():
        _check_contract(contract_path, text)
        from soda_core.common.yaml import ContractYamlSource
        from soda_core.contracts.contract_verification import ContractVerificationSession

        with target.data_source() as data_source:
            session = ContractVerificationSession.execute(
                contract_yaml_sources=[ContractYamlSource.from_str(text, file_path=str(contract_path))],
                data_source_impls=[data_source],
                variables={DATASET_VARIABLE: target.dataset_path(schema, table)},
                data_timestamp=data_timestamp.isoformat(),
            )
        return _audit_result(session.contract_verification_results[0])


def _read(contract_path: Path) -> str:
    try:
        return contract_path.read_text(encoding="utf-8")
    except OSError as error:
        raise DeclarationError(str(contract_path), [f"cannot read the contract: {error.strerror}"]) from None


def _check_contract(contract_path: Path, text: str) -> None:
    """Parse with Soda and validate without a data source; every error and warning is a problem of the file."""
    from soda_core.common.exceptions import YamlParserException
    from soda_core.common.yaml import ContractYamlSource
    from soda_core.contracts.contract_verification import ContractVerificationSession

    file = str(contract_path)
    try:
        dataset = ContractYamlSource.from_str(text, file_path=file).parse().yaml_dict.get("dataset")
        session = ContractVerificationSession.execute(
            contract_yaml_sources=[ContractYamlSource.from_str(text, file_path=file)],
            only_validate_without_execute=True,
        )
    except YamlParserException as error:
        raise DeclarationError(file, [str(error)]) from None
    problems = [] if dataset == DATASET_LINE else [f"'dataset' must be exactly '{DATASET_LINE}', not {dataset!r}"]
    problems += custom_sql_problems(yaml.safe_load(text))
    for result in session.contract_verification_results:
        problems += result.get_errors() + result.get_warnings()
    if problems:
        raise DeclarationError(file, problems)


def _audit_result(result: ContractVerificationResult) -> AuditResult:
    checks = [_check_outcome(check_result) for check_result in result.check_results]
    problems = [error.splitlines()[0] for error in result.get_errors()]
    if not checks and not problems:
        problems = ["the contract ran no checks"]
    if problems or result.has_errors:
        detail = " | ".join(problems) or f"Soda reported status {result.status.name}"
        checks.append(
            CheckOutcome(
                name="contract",
                column=None,
                check_type="contract",
                outcome="error",
                blocking=True,
                measured=None,
                detail=detail,
            )
        )
    return AuditResult(checks)


def _check_outcome(check_result: CheckResult) -> CheckOutcome:
    check = check_result.check
    outcome = _OUTCOMES.get(check_result.outcome.name, "not_evaluated")
    # A check without a threshold (Soda could not build one) counts as fail-level: it was meant to gate.
    fail_level = check.threshold is None or check.threshold.level != "warn"
    name = " ".join(part for part in (check.column_name, check.type) if part)
    thresholds = [_describe(threshold) for threshold in (check.threshold, check.warn_threshold) if threshold]
    return CheckOutcome(
        name=f"{name} ({check.qualifier})" if check.qualifier else name,
        column=check.column_name,
        check_type=check.type,
        outcome=outcome,
        blocking=outcome in ("failed", "not_evaluated") and fail_level,
        measured=_number(check_result.threshold_value),
        threshold=", ".join(thresholds),
        detail=check_result.log_table_row_diagnostics(verbose=False).replace("\n", "; "),
    )


def _describe(threshold: Threshold) -> str:
    """`Threshold.__str__` is "level: fail\\nmust be: 0"; make it "must be 0" or "warn: must be 0"."""
    comparisons = ", ".join(line.replace(":", "") for line in str(threshold).splitlines()[1:])
    return f"warn: {comparisons}" if threshold.level == "warn" else comparisons


def _number(value: object) -> float | int | None:
    """Measured values come straight from the database driver: Decimals must become JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value if isinstance(value, int | float) else None
