"""One error hierarchy, so callers can tell user mistakes from transient faults.

Tasks retry only `TransientError`; the CLI prints any `ShipshapeError` as one line
(tracebacks stay behind `--debug`), because these are messages for people, not bugs.
"""

from __future__ import annotations


class ShipshapeError(Exception):
    """Base of every error the platform raises on purpose."""


class DeclarationError(ShipshapeError):
    """A pipeline declaration (or a file it points to) is invalid."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(f"{file}: " + "; ".join(problems))


class ConfigurationError(ShipshapeError):
    """Configuration the platform needs (a variable, a block, a secret) is missing or wrong."""


class PlatformSchemaError(ConfigurationError):
    """The platform tables are older than this code and this run may not migrate them, or newer (code rolled back)."""


class TransientError(ShipshapeError):
    """A fault that may go away on its own (network, 5xx, lock timeout): worth retrying."""


class TerminalError(ShipshapeError):
    """A fault that will not go away by retrying (bad SQL, 4xx, missing file)."""


class SourceError(TerminalError):
    """The source cannot be read as declared."""


class SchemaDriftError(TerminalError):
    """The live source no longer matches the declared columns."""


class RejectThresholdError(TerminalError):
    """More rows failed type conversion than the declaration allows."""


class WarehouseError(TerminalError):
    """The warehouse refused a statement for a reason retrying will not fix."""


class PartitionBusyError(TerminalError):
    """Another run holds the partition: this run changes nothing and stops."""


class AuditFailedError(TerminalError):
    """The data contract blocked publishing; the published table is unchanged."""


# The state a run ends in when the audit gate blocks it: Failed, but with its own event
# (`prefect.flow-run.AuditFailed`), so alerts and SLOs tell a data problem from a crash.
AUDIT_FAILED_STATE = "AuditFailed"


class RunTimedOutError(TerminalError):
    """The run used up its timeout (declared or derived, see `run_timeout`); nothing was published."""


# Prefect's own name for a run that exceeded its timeout (`prefect.flow-run.TimedOut`, an alert trigger).
TIMED_OUT_STATE = "TimedOut"


class PublishError(TerminalError):
    """Publishing failed; the transaction was rolled back, the published table is unchanged."""


class BackfillFailedError(TerminalError):
    """Some partitions of a backfill did not complete; the others were published."""


class PartitionLostError(PublishError):
    """The run no longer holds its partition locks (their session ended): it must not publish what it audited."""


class BreakingChangeError(TerminalError):
    """A change would break the published table's readers (a column removed or renamed) without a version bump."""


class RollbackError(TerminalError):
    """A rollback was refused (unknown publish, history expired, partition busy or never published); nothing changed."""
