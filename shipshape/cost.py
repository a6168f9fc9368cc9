"""What each pipeline costs a month, and its projection against `cost.budget_per_month`.

Compute is the time its flow runs took (Prefect's `total_run_time`) times the allocation each run is declared to use
(`names.WORKER_VCPUS`, `names.WORKER_MEMORY_GB`); storage is the bytes of its tables the monitor sampled
(`shipshape.usage`), averaged over the month's samples and charged for the part of the month they cover. A
`CostModel` turns both into money. `monthly_costs` is the one function `shipshape cost`, the monitor's artifact and
a report read.

Projection: month-to-date compute plus the daily compute rate of the last `TRAILING_DAYS` over the days left (so one
long backfill at the start of a month is not multiplied by 30), plus the latest storage for the whole month.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from shipshape.declaration import Pipeline
from shipshape.errors import ConfigurationError
from shipshape.ledger import LEDGER_TABLE
from shipshape.names import WORKER_MEMORY_GB, WORKER_VCPUS
from shipshape.usage import (
    AREAS,
    SAMPLE_LOOKBACK,
    PlatformScans,
    Sample,
    measure,
    platform_scans,
    read_intervals,
    recorded,
)
from shipshape.warehouses import PLATFORM_SCHEMA, Warehouse

GB = 1024**3
TRAILING_DAYS = 7


@dataclass(frozen=True)
class CostModel:
    """Rates per unit, in `currency`. The defaults are assumptions: typical cloud on-demand list prices (US East,
    late 2026) — a container's vCPU-hour and GB-hour (AWS Fargate: 0.04048, 0.004445) and a managed PostgreSQL
    disk's GB-month (RDS gp3: 0.115). An environment declares its own (`deployments/environments.py`)."""

    vcpu_hour: float = 0.04048
    memory_gb_hour: float = 0.004445
    storage_gb_month: float = 0.115
    currency: str = "USD"

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)

    @classmethod
    def from_value(cls, value: object, where: str) -> CostModel:
        """The model `make apply` stored (a JSON object); anything else names where it came from and the fix."""
        try:
            if not isinstance(value, dict):
                raise TypeError(f"expected an object, got {type(value).__name__}")
            return cls(**value)
        except (TypeError, ValueError) as error:
            raise ConfigurationError(
                f"{where} is not a cost model ({error}); run `make apply` for the environment to write it again"
            ) from None


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        try:
            moment = datetime.strptime(text, "%Y-%m")
        except ValueError:
            raise ConfigurationError(f"month {text!r} is not YYYY-MM (e.g. 2026-11)") from None
        return cls(moment.year, moment.month)

    @classmethod
    def of(cls, moment: datetime) -> Month:
        return cls(moment.year, moment.month)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=calendar.monthrange(self.year, self.month)[1])

    def previous(self) -> Month:
        return Month(self.year - 1, 12) if self.month == 1 else Month(self.year, self.month - 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class RunTime:
    """One finished flow run of a pipeline: when it ended and how long it ran."""

    finished_at: datetime
    seconds: float


@dataclass(frozen=True)
class PipelineMonth:
    """One pipeline's month in one environment: usage, money per component, budget and projection."""

    pipeline: str
    environment: str
    month: str
    currency: str
    runs: int
    vcpu_hours: float
    memory_gb_hours: float
    storage_gb: dict[str, float | None]  # by area (`usage.AREAS`): the month's average; None: the engine cannot say
    rows_published: int
    reads: int | None  # None: unknown (the engine keeps no read statistics, or nothing sampled yet)
    compute_cost: float
    memory_cost: float
    storage_cost: float
    budget: float | None
    projected_cost: float
    elapsed_fraction: float  # of the month, at the time of evaluation (1 for a past month)
    read_methods: list[str] = field(default_factory=list)

    @property
    def total_cost(self) -> float:
        return self.compute_cost + self.memory_cost + self.storage_cost

    @property
    def cost_per_read(self) -> float | None:
        return self.total_cost / self.reads if self.reads else None

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.projected_cost > self.budget

    def as_row(self) -> dict[str, object]:
        """Plain values for a table artifact or JSON (money rounded to a millionth, GB to a millionth)."""
        return {
            "pipeline": self.pipeline,
            "environment": self.environment,
            "month": self.month,
            "currency": self.currency,
            "runs": self.runs,
            "vcpu_hours": round(self.vcpu_hours, 6),
            "memory_gb_hours": round(self.memory_gb_hours, 6),
            **{f"storage_gb_{area}": None if gb is None else round(gb, 6) for area, gb in self.storage_gb.items()},
            "rows_published": self.rows_published,
            "reads": self.reads,
            "read_method": ",".join(self.read_methods) or None,
            "compute_cost": round(self.compute_cost, 6),
            "memory_cost": round(self.memory_cost, 6),
            "storage_cost": round(self.storage_cost, 6),
            "total_cost": round(self.total_cost, 6),
            "cost_per_read": None if self.cost_per_read is None else round(self.cost_per_read, 6),
            "budget": self.budget,
            "projected_cost": round(self.projected_cost, 6),
            "over_budget": self.over_budget,
        }


def price(
    spec: Pipeline,
    environment: str,
    month: Month,
    runs: Sequence[RunTime],
    samples: Sequence[Sample],
    model: CostModel,
    now: datetime,
    rows_published: int = 0,
    reads: tuple[int | None, Sequence[str]] = (None, ()),
) -> PipelineMonth:
    """The arithmetic: compute, memory and storage money for the month so far, and the month's projection."""
    until = min(now, month.end)
    month_seconds = (month.end - month.start).total_seconds()
    elapsed = max(0.0, min(1.0, (until - month.start).total_seconds() / month_seconds))
    in_month = [run for run in runs if month.start <= run.finished_at < month.end]
    hours = sum(run.seconds for run in in_month) / 3600
    vcpu_hours, memory_gb_hours = hours * WORKER_VCPUS, hours * WORKER_MEMORY_GB
    hourly = WORKER_VCPUS * model.vcpu_hour + WORKER_MEMORY_GB * model.memory_gb_hour
    storage_gb = _storage_gb(samples, month)
    stored = sum(gb for gb in storage_gb.values() if gb is not None)
    storage_cost = stored * model.storage_gb_month * elapsed
    compute_cost, memory_cost = vcpu_hours * model.vcpu_hour, memory_gb_hours * model.memory_gb_hour
    projected = compute_cost + memory_cost + storage_cost
    if now < month.end:
        trailing_start = now - timedelta(days=TRAILING_DAYS)
        trailing_hours = sum(run.seconds for run in runs if trailing_start <= run.finished_at <= now) / 3600
        days_left = (month.end - now).total_seconds() / 86400
        latest_gb = _latest_gb(samples)
        projected += trailing_hours / TRAILING_DAYS * days_left * hourly
        projected += latest_gb * model.storage_gb_month * (1 - elapsed)
    return PipelineMonth(
        pipeline=spec.name,
        environment=environment,
        month=str(month),
        currency=model.currency,
        runs=len(in_month),
        vcpu_hours=vcpu_hours,
        memory_gb_hours=memory_gb_hours,
        storage_gb=storage_gb,
        rows_published=rows_published,
        reads=reads[0],
        compute_cost=compute_cost,
        memory_cost=memory_cost,
        storage_cost=storage_cost,
        budget=None if spec.cost.budget_per_month is None else float(spec.cost.budget_per_month),
        projected_cost=projected,
        elapsed_fraction=elapsed,
        read_methods=list(reads[1]),
    )


def month_reads(
    samples: Sequence[Sample], month: Month, scans: Mapping[str, PlatformScans]
) -> tuple[int | None, list[str]]:
    """Consumer reads of the pipeline's published tables in `month` (intervals ending in it); None when no table of
    it has a counter in two samples. `scans[table]` gives the platform's scans of a table (`usage.platform_scans`)."""
    total: int | None = None
    methods: set[str] = set()
    by_table: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.area == "published":
            by_table.setdefault(sample.table_name, []).append(sample)
    for table, table_samples in by_table.items():
        intervals = read_intervals(table_samples, scans.get(table, _no_scans))
        if not intervals:
            continue
        methods.update(s.read_method for s in table_samples if s.read_method)
        total = (total or 0) + sum(i.reads for i in intervals if month.start <= i.end < month.end)
    return total, sorted(methods)


def monthly_costs(
    warehouse: Warehouse,
    specs: Sequence[Pipeline],
    environment: str,
    month: Month,
    runs: Mapping[str, Sequence[RunTime]],
    model: CostModel,
    now: datetime,
    readers: Sequence[str] = (),
    *,
    measure_now: bool = True,
) -> list[PipelineMonth]:
    """Every pipeline's month: the samples the monitor recorded (plus, for the current month and `measure_now`, one
    measured now and not stored) and `runs[pipeline]` (its runs ending in the month or the trailing days before
    `now`). The monitor, which has just recorded a sample, passes `measure_now=False`."""
    current = month.start <= now < month.end
    live = measure(warehouse, specs, readers, now) if current and measure_now else []
    months = []
    for spec in specs:
        since = month.start - SAMPLE_LOOKBACK  # the sample before the month's first one starts its first interval
        samples = recorded(warehouse, spec.name, since, month.end) + [s for s in live if s.pipeline == spec.name]
        scans = {
            s.table_name: platform_scans(warehouse, spec, s.table_name, since)
            for s in samples if s.area == "published" and s.read_method == "scans"
        }
        months.append(price(
            spec, environment, month, runs.get(spec.name, ()), samples, model, now,
            rows_published=_rows_published(warehouse, spec.name, month),
            reads=month_reads(samples, month, scans),
        ))
    return months


def _rows_published(warehouse: Warehouse, pipeline: str, month: Month) -> int:
    rows = warehouse.fetch_all(
        f"SELECT coalesce(sum(row_count), 0) FROM {warehouse.qualified(PLATFORM_SCHEMA, LEDGER_TABLE)} "
        "WHERE pipeline = ? AND status = 'published' AND finished_at >= ? AND finished_at < ?",
        [pipeline, month.start, month.end],
    )
    return int(rows[0][0])


def _no_scans(start: datetime, end: datetime) -> int:
    return 0


def _storage_gb(samples: Sequence[Sample], month: Month) -> dict[str, float | None]:
    """Each area's average size over the month's sampling passes (a pass: the samples of one instant)."""
    in_month = [s for s in samples if month.start <= s.sampled_at < month.end]
    passes = sorted({s.sampled_at for s in in_month})
    result: dict[str, float | None] = {}
    for area in AREAS:
        per_pass = []
        for at in passes:
            sizes = [s.bytes for s in in_month if s.sampled_at == at and s.area == area]
            if sizes and all(size is not None for size in sizes):
                per_pass.append(sum(size for size in sizes if size is not None))
        result[area] = sum(per_pass) / len(per_pass) / GB if per_pass else (0.0 if not passes else None)
    return result


def _latest_gb(samples: Sequence[Sample]) -> float:
    if not samples:
        return 0.0
    latest = max(s.sampled_at for s in samples)
    return sum(s.bytes or 0 for s in samples if s.sampled_at == latest) / GB
