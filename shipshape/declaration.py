"""Typed model of a pipeline declaration: everything a pipeline owner writes, nothing the platform does.

Every model forbids unknown keys so a typo (`shedule:`) is an error, not a silently ignored
setting. Loading and error formatting live in `catalog.py`; this module only says what is valid.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from functools import reduce
from operator import or_
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, Field, StrictBool, StrictFloat, field_validator, model_validator
from pydantic.fields import FieldInfo

from shipshape.column_types import ColumnType
from shipshape.declaration_base import IDENTIFIER, SecretRef, StrictModel
from shipshape.names import PII_KEY_BLOCK, PII_KEY_VARIABLE, RESERVED_SCHEMAS, reserved_schema, versioned_table
from shipshape.partitions import Grain
from shipshape.sources.kind import SourceBase
from shipshape.sources.registry import SOURCE_KINDS

_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The nicknames Prefect's scheduler accepts, as the five fields they stand for.
_CRON_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _valid_duration(value: str) -> str:
    if not _DURATION.match(value.strip()):
        raise ValueError("expected a duration like 90m, 26h or 2d (units: s, m, h, d)")
    return value.strip()


Duration = Annotated[str, AfterValidator(_valid_duration)]


def to_timedelta(duration: str) -> timedelta:
    """A declared duration (`26h`) as a timedelta; the text was validated when the declaration loaded."""
    match = _DURATION.match(duration.strip())
    if match is None:
        raise ValueError(f"not a duration: {duration!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class Owner(StrictModel):
    """Who is paged: alerts go to `slack_channel`; `github` (and `person`) own the files in CODEOWNERS."""

    team: str
    # An email address: CODEOWNERS accepts it for a GitHub user whose verified email it is.
    person: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    github: Annotated[str, Field(pattern=r"^@[A-Za-z0-9-]+(/[A-Za-z0-9._-]+)?$")] | None = None
    slack_channel: Annotated[str, Field(pattern=r"^#[a-z0-9._-]+$")]

    @model_validator(mode="after")
    def _reviewable(self) -> Owner:
        """Without a reviewer, CODEOWNERS could not route the pipeline's changes to anyone who owns it."""
        if self.github is None and self.person is None:
            raise ValueError(
                "give 'owner.github' (a GitHub user or team, e.g. '@example-org/commerce') or 'owner.person' "
                "(an email address) — CODEOWNERS requests reviews of the pipeline's files from them"
            )
        return self

    @property
    def reviewers(self) -> list[str]:
        """The CODEOWNERS owners of the pipeline's files: the GitHub handle, then the person's email."""
        return [owner for owner in (self.github, self.person) if owner is not None]

    @property
    def channel_slug(self) -> str:
        """The channel as a name fragment (`#commerce-data` → `commerce-data`) for blocks and variables."""
        return re.sub(r"[^a-z0-9-]", "-", self.slack_channel.removeprefix("#"))


def _source_union() -> Any:
    """`source:` is one of the registered kinds, the one its `kind:` names."""
    members = reduce(or_, (kind.model for kind in SOURCE_KINDS.values()))
    return Annotated[members, Field(discriminator="kind")]


if TYPE_CHECKING:
    Source = SourceBase  # whichever kind: callers use what every kind has
else:
    Source = _source_union()


class Destination(StrictModel):
    """Where the pipeline publishes. A breaking change (a column removed, renamed or narrowed) bumps `version`:
    version N publishes `<table>_vN` (`published_table`) while the previous version's table keeps its data and its
    readers' grants until `previous_version_until`, a date the owner announces; then `make apply` drops it."""

    table: Annotated[str, Field(pattern=IDENTIFIER, max_length=40)]
    schema_name: Annotated[str, Field(alias="schema", pattern=IDENTIFIER)] = "analytics"
    version: Annotated[int, Field(ge=1, le=99)] = 1
    previous_version_until: date | None = None

    @model_validator(mode="after")
    def _deprecation_declared(self) -> Destination:
        """A bump without a date would leave readers of the old table guessing how long they have."""
        if self.version > 1 and self.previous_version_until is None:
            raise ValueError(
                f"destination.version {self.version} needs 'previous_version_until' (a date, e.g. 2027-01-31): "
                f"until then {self.previous_table} keeps its data and grants, so its readers can move to "
                f"{self.published_table}"
            )
        if self.version == 1 and self.previous_version_until is not None:
            raise ValueError("'previous_version_until' is only for destination.version 2 or more; remove it")
        return self

    @property
    def published_table(self) -> str:
        """The table this version publishes (`fct_orders`, `fct_orders_v2`): the one place the name is derived."""
        return versioned_table(self.table, self.version)

    @property
    def previous_table(self) -> str | None:
        """The previous version's table, kept for readers until `previous_version_until`; None at version 1."""
        return versioned_table(self.table, self.version - 1) if self.version > 1 else None

    def versions_note(self, today: date) -> str:
        """Where readers find the data now, and until when the previous version stays (`shipshape status`)."""
        current = f"{self.schema_name}.{self.published_table}"
        if self.previous_table is None or self.previous_version_until is None:
            return current
        previous = f"v{self.version - 1} {self.schema_name}.{self.previous_table}"
        if today <= self.previous_version_until:
            return f"{current}; {previous} kept until {self.previous_version_until}"
        return f"{current}; {previous} retired {self.previous_version_until} (make apply drops it)"

    def retired_tables(self, today: date) -> list[str]:
        """Earlier versions' tables nobody is promised any more: every version before the previous one, and the
        previous one once `previous_version_until` has passed."""
        kept = 1 if self.previous_version_until is not None and today <= self.previous_version_until else 0
        return [versioned_table(self.table, version) for version in range(1, self.version - kept)]

    @field_validator("schema_name")
    @classmethod
    def _not_reserved(cls, schema: str) -> str:
        """`make apply` grants consumers every destination schema: `platform` would hand them the ledger."""
        if reserved_schema(schema):
            raise ValueError(
                f"schema {schema!r} is reserved for the platform or the database "
                f"({', '.join(sorted(RESERVED_SCHEMAS))}, pg_*); publish to a schema of your own, e.g. analytics"
            )
        return schema


class Partition(StrictModel):
    column: Annotated[str, Field(pattern=IDENTIFIER)]
    grain: Grain


class Load(StrictModel):
    mode: Literal["replace_partition", "merge", "full_replace"]
    key: list[str] = Field(default_factory=list, description="Merge key columns (mode: merge).")


class Freshness(StrictModel):
    sla: Duration = Field(description="Longest allowed time without a publish, e.g. 26h, 90m, 2d.")

    @property
    def sla_delta(self) -> timedelta:
        return to_timedelta(self.sla)


class History(StrictModel):
    """How long the rows each publish replaces are kept (`history.h_<entry id>`) for `shipshape rollback`."""

    retention: Duration = Field(default="7d", description="How long replaced rows stay restorable, e.g. 7d, 36h.")

    @property
    def retention_delta(self) -> timedelta:
        return to_timedelta(self.retention)


class Cost(StrictModel):
    """What the pipeline may cost a month (`shipshape.cost`): the monitor opens a `cost` incident when the month's
    projection passes it. Money in the environment's cost model's currency."""

    budget_per_month: float | None = Field(
        default=None, description="Most the pipeline may cost per month, e.g. 50 (USD); no budget when absent."
    )

    @field_validator("budget_per_month", mode="before")
    @classmethod
    def _positive_amount(cls, value: object) -> object:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError(
                "expected a positive amount per month in the environment's cost model currency, e.g. 50 or 12.5 "
                "(no quotes); remove cost.budget_per_month for no budget"
            )
        return value


class Value(StrictModel):
    """Whether anyone reads what the pipeline publishes (`shipshape.usage`): unread for `unread_after` since its
    first publish, the monitor opens an `unused` incident suggesting to pause or retire it."""

    unread_after: Duration = Field(default="30d", description="How long without a consumer read is unused, e.g. 30d.")

    @property
    def unread_after_delta(self) -> timedelta:
        return to_timedelta(self.unread_after)


class VolumeAnomaly(StrictModel):
    """A published partition whose row count leaves the band of its trailing baseline is a warning, not a block.

    `robust_z`: |0.6745 · (rows - median) / MAD| above `threshold` (MAD = median absolute deviation, so one
    outlier in the baseline does not widen the band). `percentile`: outside [p_low, p_high] of the baseline.
    """

    method: Literal["robust_z", "percentile"] = "robust_z"
    baseline_partitions: Annotated[int, Field(ge=3, le=365)] = 14
    min_history: Annotated[int, Field(ge=3)] = 7
    threshold: Annotated[float, Field(gt=0)] = 3.5
    percentiles: tuple[Annotated[int, Field(ge=1, le=99)], Annotated[int, Field(ge=1, le=99)]] = (5, 95)

    @model_validator(mode="after")
    def _consistent(self) -> VolumeAnomaly:
        if self.min_history > self.baseline_partitions:
            raise ValueError(
                f"min_history ({self.min_history}) is greater than baseline_partitions ({self.baseline_partitions})"
            )
        if self.percentiles[0] >= self.percentiles[1]:
            raise ValueError(f"percentiles {list(self.percentiles)} must be [lower, upper] with lower < upper")
        return self


class Volume(StrictModel):
    """What the audit gate blocks on row counts (`shipshape.volume`), and what only warns (`anomaly`).

    Blocking: outside `min_rows`/`max_rows`; no rows at all unless `allow_empty`; a publish that would leave what
    it replaces (the partition, or the whole table for `full_replace` and `merge`) with fewer than
    (1 - `max_shrink`) of the rows it holds now. `max_shrink: 1` allows any shrink.
    """

    min_rows: Annotated[int, Field(ge=0)] | None = None
    max_rows: Annotated[int, Field(ge=0)] | None = None
    allow_empty: StrictBool = False
    # Strict: YAML's `yes` must not become 1.0 (any shrink allowed); `1` and `0` are numbers as they should be.
    max_shrink: Annotated[StrictFloat, Field(ge=0, le=1)] = 0.5
    anomaly: VolumeAnomaly | None = VolumeAnomaly()

    @model_validator(mode="after")
    def _ordered(self) -> Volume:
        if self.min_rows is not None and self.max_rows is not None and self.min_rows > self.max_rows:
            raise ValueError(f"min_rows ({self.min_rows}) is greater than max_rows ({self.max_rows})")
        if self.allow_empty and self.min_rows:
            raise ValueError(
                f"allow_empty is true but min_rows ({self.min_rows}) still blocks an empty partition; "
                "remove one of them"
            )
        return self


class Schedule(StrictModel):
    cron: str
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _valid_cron(self) -> Schedule:
        """Checked here, not at `prefect deploy`: a typo should fail `shipshape validate` in the pull request."""
        try:
            CronSim(_CRON_NICKNAMES.get(self.cron.strip(), self.cron), datetime.now(ZoneInfo(self.timezone)))
        except (CronSimError, ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"invalid cron {self.cron!r} or timezone {self.timezone!r}: {_first_line(error)}"
            ) from None
        return self


class Slo(StrictModel):
    """Service level objectives over a rolling `window`; a burn rate above `fast_burn_rate` over
    `fast_burn_window` alerts (the budget would be gone in window / rate)."""

    window: Duration = "28d"
    success_rate: Annotated[float, Field(gt=0, lt=1)] = 0.95
    freshness: Annotated[float, Field(gt=0, lt=1)] = 0.99
    fast_burn_window: Duration = "1d"
    fast_burn_rate: Annotated[float, Field(gt=1)] = 10.0

    @property
    def window_delta(self) -> timedelta:
        return to_timedelta(self.window)

    @property
    def fast_burn_delta(self) -> timedelta:
        return to_timedelta(self.fast_burn_window)


class Retries(StrictModel):
    attempts: Annotated[int, Field(ge=0, le=10)] = 3
    delay_seconds: Annotated[float, Field(ge=0)] = 10.0


class Pii(StrictModel):
    columns: dict[str, Literal["hash", "drop"]]
    key: SecretRef = SecretRef(env=PII_KEY_VARIABLE, block=PII_KEY_BLOCK)


class Rejects(StrictModel):
    """How many rows may fail type conversion: `max_fraction` of the partition if set, else `max_rows`."""

    max_rows: Annotated[int, Field(ge=0)] = 0
    max_fraction: Annotated[float, Field(ge=0, le=1)] | None = None


class Pipeline(StrictModel):
    """One declared pipeline, as written in `pipelines/<name>.yaml`."""

    # ≤ 30 so audit table names (<name>__<partition>__<run>__<step>) fit PostgreSQL's 63 characters
    name: Annotated[str, Field(pattern=IDENTIFIER, max_length=30)]
    description: str
    owner: Owner
    source: Source
    destination: Destination
    partition: Partition | None = None
    load: Load
    transform: list[str] = Field(
        default_factory=list, description="SQL files run in order; `{{ raw }}` is the loaded data."
    )
    contract: str
    freshness: Freshness
    volume: Volume = Volume()
    slo: Slo = Slo()
    schedule: Schedule
    retries: Retries = Retries()
    timeout: Duration | None = Field(
        default=None,
        description="Longest a run may take before it ends TimedOut, e.g. 30m; default: 3x the slowest recent "
        "run per partition, at least 15m (`shipshape.run_timeout`).",
    )
    pii: Pii | None = None
    rejects: Rejects = Rejects()
    history: History = History()
    cost: Cost = Cost()
    value: Value = Value()

    @model_validator(mode="after")
    def _consistent(self) -> Pipeline:
        declared = set(self.source.columns)
        if self.partition is None and self.load.mode == "replace_partition":
            raise ValueError("load.mode 'replace_partition' needs a 'partition'; use 'full_replace' or declare one")
        if self.partition is not None and self.load.mode == "full_replace":
            raise ValueError(
                "load.mode 'full_replace' replaces the whole table; remove 'partition' or use 'replace_partition'"
            )
        if self.timeout is not None and not self.timeout_delta:
            raise ValueError(f"timeout {self.timeout!r} is zero: give a duration like 30m, or remove it (default)")
        if self.load.mode == "merge" and not self.load.key:
            raise ValueError("load.mode 'merge' needs 'load.key' (the columns that identify a row)")
        self.source.check_in_pipeline(partitioned=self.partition is not None)
        if self.pii is not None:
            unknown = sorted(set(self.pii.columns) - declared)
            if unknown:
                raise ValueError(f"pii columns {unknown} are not declared in source.columns")
        return self

    @property
    def column_types(self) -> dict[str, ColumnType]:
        return self.source.column_types()

    @property
    def timeout_delta(self) -> timedelta | None:
        return to_timedelta(self.timeout) if self.timeout is not None else None

    @property
    def grain(self) -> Grain | None:
        """The partition grain; None for a full-refresh pipeline (one partition: the whole table)."""
        return self.partition.grain if self.partition else None


def accept_registered_sources() -> None:
    """Rebuild `Pipeline` so its `source:` accepts exactly the kinds registered now (one was added or removed).

    Pydantic fixes a model's fields when its class is created, so a kind registered later (a plugin, a test)
    needs the field replaced and the schema rebuilt; the kinds of `SOURCE_KINDS` are in from the start.
    """
    Pipeline.model_fields["source"] = FieldInfo.from_annotation(_source_union())
    Pipeline.model_rebuild(force=True)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[-1]
