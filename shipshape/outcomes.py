"""What each step of a partition run reports, and how a partition's outcome becomes a ledger row.

Plain data, no Prefect: tasks return these, the flow composes them, the ledger records them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from shipshape.audit import AuditResult
from shipshape.audit_area import RunTables
from shipshape.catalog import DeclaredPipeline
from shipshape.ledger import LedgerEntry, PublishedTable, Status
from shipshape.settings import code_version


@dataclass(frozen=True)
class LoadReport:
    rows: int
    rejected: int


@dataclass(frozen=True)
class TransformReport:
    """The table the audit and the publish read, and its row count."""

    table: str
    rows: int


@dataclass(frozen=True)
class RunContext:
    """What every ledger row of one flow run shares."""

    declared: DeclaredPipeline
    flow_run_id: str
    started: datetime

    def ledger_entry(
        self, run: RunTables, status: Status, message: str, outcome: PartitionOutcome | None = None
    ) -> LedgerEntry:
        return LedgerEntry(
            pipeline=self.declared.name,
            partition_key=run.window.key,
            partition_start=run.window.start,
            partition_end=run.window.end,
            flow_run_id=self.flow_run_id,
            run_tag=run.run_tag,
            code_version=code_version(),
            contract_hash=hashlib.sha256(self.declared.contract_path.read_bytes()).hexdigest()[:16],
            row_count=outcome.output.rows if outcome else 0,
            rejected_rows=outcome.load.rejected if outcome else 0,
            status=status,
            check_results=outcome.audit.checks if outcome else [],
            message=message,
            started_at=self.started,
            destination=PublishedTable.of(self.declared.spec).destination,
        )


@dataclass(frozen=True)
class PartitionOutcome:
    """A partition written and audited, not yet published."""

    run: RunTables
    load: LoadReport
    output: TransformReport
    audit: AuditResult

    def ledger_entry(self, context: RunContext, status: Status) -> LedgerEntry:
        message = "" if status == "published" else self.audit.failed_summary()
        return context.ledger_entry(self.run, status, message, self)

    def summary_row(self, status: str) -> dict[str, object]:
        passed = sum(not check.blocking for check in self.audit.checks)
        return {
            "partition": self.run.window.key,
            "rows": self.output.rows,
            "rejected": self.load.rejected,
            "checks": f"{passed}/{len(self.audit.checks)} ok",
            "status": status,
        }


def failed_row(partition_key: str, message: str) -> dict[str, object]:
    """The summary row of a partition that failed before its audit (per-partition runs go on without it)."""
    return {"partition": partition_key, "rows": "", "rejected": "", "checks": "", "status": f"failed: {message}"}
