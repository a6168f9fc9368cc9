"""Cost and value policies: the money arithmetic, the month's projection, reads from counters, unused tables, the
declaration fields, and `shipshape cost`'s table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli import cost as cost_view
from shipshape.alerts import COST, UNUSED
from shipshape.catalog import find_pipeline, load_pipeline
from shipshape.cost import GB, CostModel, Month, RunTime, month_reads, price
from shipshape.declaration import Pipeline
from shipshape.errors import ConfigurationError
from shipshape.ledger import USAGE_SAMPLE_COLUMNS
from shipshape.monitoring import cost_observation, unused_observation
from shipshape.names import WORKER_MEMORY_GB, WORKER_VCPUS
from shipshape.usage import Sample, is_unused, partition_reads, read_intervals, unread_since
from tests.unit.test_declarations import _error_for, _write_variant

MODEL = CostModel(vcpu_hour=0.04, memory_gb_hour=0.005, storage_gb_month=0.1)
NOVEMBER = Month(2026, 11)  # 30 days
MID_NOVEMBER = datetime(2026, 11, 16, tzinfo=UTC)  # half of it elapsed
TABLE = "analytics.fct_orders"


def spec(budget: float | None = None) -> Pipeline:
    base = find_pipeline("shop_orders").spec
    return base.model_copy(update={"cost": base.cost.model_copy(update={"budget_per_month": budget})})


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def published(when: datetime, size: int, counter: int | None = None, method: str | None = "statements") -> Sample:
    return Sample("shop_orders", "published", TABLE, when, size, counter, method if counter is not None else None)


def test_compute_is_run_time_times_the_declared_allocation_priced_by_the_model() -> None:
    runs = [RunTime(at(2), 1800), RunTime(at(3), 1800), RunTime(datetime(2026, 10, 31, tzinfo=UTC), 3600)]

    month = price(spec(), "prod", NOVEMBER, runs, [], MODEL, datetime(2026, 12, 2, tzinfo=UTC))

    assert month.runs == 2, "October's run is not November's"
    assert month.vcpu_hours == pytest.approx(1.0 * WORKER_VCPUS)
    assert month.memory_gb_hours == pytest.approx(1.0 * WORKER_MEMORY_GB)
    assert month.compute_cost == pytest.approx(WORKER_VCPUS * 0.04)
    assert month.memory_cost == pytest.approx(WORKER_MEMORY_GB * 0.005)
    assert month.elapsed_fraction == 1 and month.projected_cost == pytest.approx(month.total_cost), "a past month"


def test_storage_is_the_average_of_the_months_samples_charged_for_the_time_covered() -> None:
    samples = [published(at(2), 1 * GB), published(at(10), 3 * GB), Sample("shop_orders", "history", "h", at(2), GB)]
    samples.append(Sample("shop_orders", "history", "h", at(10), GB))

    month = price(spec(), "prod", NOVEMBER, [], samples, MODEL, MID_NOVEMBER)

    assert month.storage_gb["published"] == pytest.approx(2.0)
    assert month.storage_gb["history"] == pytest.approx(1.0)
    assert month.storage_cost == pytest.approx(3.0 * 0.1 * 0.5), "half the month so far"


def test_the_projection_adds_the_trailing_weeks_compute_rate_and_the_latest_storage_for_the_rest_of_the_month() -> None:
    """A backfill at the start of the month is not multiplied by the whole month: only the last 7 days' rate is."""
    backfill = RunTime(at(1), 10 * 3600)
    daily = [RunTime(MID_NOVEMBER - timedelta(days=d), 3600) for d in range(7)]
    samples = [published(at(15), 2 * GB)]

    month = price(spec(), "prod", NOVEMBER, [backfill, *daily], samples, MODEL, MID_NOVEMBER)

    hourly = WORKER_VCPUS * 0.04 + WORKER_MEMORY_GB * 0.005
    so_far = 17 * hourly + 2 * 0.1 * 0.5
    assert month.total_cost == pytest.approx(so_far)
    assert month.projected_cost == pytest.approx(so_far + 1 * 15 * hourly + 2 * 0.1 * 0.5)


def test_over_budget_when_the_projection_passes_the_budget_and_the_observation_says_so() -> None:
    runs = [RunTime(MID_NOVEMBER - timedelta(hours=1), 3600)]
    cheap = price(spec(budget=1000), "prod", NOVEMBER, runs, [], MODEL, MID_NOVEMBER)
    tight = price(spec(budget=0.01), "prod", NOVEMBER, runs, [], MODEL, MID_NOVEMBER)
    unbudgeted = price(spec(), "prod", NOVEMBER, runs, [], MODEL, MID_NOVEMBER)

    assert (cheap.over_budget, tight.over_budget, unbudgeted.over_budget) == (False, True, False)
    opened = cost_observation(tight)
    assert (opened.kind, opened.breached) == (COST, True)
    assert "passes the budget 0.01 USD" in opened.summary
    assert cost_observation(cheap).breached is False and cost_observation(unbudgeted).breached is False


def test_reads_are_counter_differences_and_a_reset_counter_restarts_from_its_value() -> None:
    samples = [published(at(1), 0, 10), published(at(2), 0, 14), published(at(3), 0, 3), published(at(4), 0, 3)]

    intervals = read_intervals(samples, lambda _start, _end: 99)

    assert [interval.reads for interval in intervals] == [4, 3, 0], "statement counts are the consumers' alone"


def test_scan_counts_lose_the_platforms_own_scans_never_below_zero() -> None:
    samples = [published(at(1), 0, 100, "scans"), published(at(2), 0, 110, "scans"), published(at(3), 0, 112, "scans")]

    intervals = read_intervals(samples, lambda start, _end: 3 if start == at(1) else 5)

    assert [interval.reads for interval in intervals] == [7, 0]


def partitions(when: datetime, scans: dict[int, int]) -> Sample:
    """A sample of a partitioned table: its partitions' scans by oid."""
    return Sample("shop_orders", "published", TABLE, when, 0, sum(scans.values()), "partition_scans", scans)


def test_partition_scans_count_the_largest_increase_of_a_common_partition_once_not_per_partition() -> None:
    samples = [partitions(at(1), {11: 5, 12: 5, 13: 2}), partitions(at(2), {11: 8, 12: 8, 13: 5})]

    intervals = read_intervals(samples, lambda _start, _end: 99)

    assert [interval.reads for interval in intervals] == [3], "3 whole-table queries, the platform's scans ignored"


def test_partition_scans_of_disjoint_partitions_are_a_lower_bound() -> None:
    assert partition_reads({11: 0, 12: 0}, {11: 2, 12: 3}) == 3, "2 queries of one day and 3 of another"


def test_a_partition_exchanged_in_is_not_counted_and_a_reset_partition_counts_its_new_value() -> None:
    assert partition_reads({11: 4, 12: 4}, {11: 4, 21: 9}) == 0, "oid 21 replaced 12: the audit's scans are in it"
    assert partition_reads({11: 4}, {21: 9}) == 0, "no partition in both samples: nothing seen"
    assert partition_reads({11: 40, 12: 40}, {11: 2, 12: 1}) == 2, "statistics reset: the reads since"
    assert partition_reads({11: 4}, {11: 6}) == 2


def test_a_samples_row_keeps_its_partition_counters_as_json_by_oid() -> None:
    sample = partitions(at(1), {11: 5, 4294967295: 7})

    row = dict(zip(USAGE_SAMPLE_COLUMNS, sample.as_row(), strict=True))

    assert row["read_counter"] == 12 and row["read_method"] == "partition_scans"
    assert json.loads(str(row["partition_read_counters"])) == {"11": 5, "4294967295": 7}


def test_a_months_reads_count_intervals_ending_in_it_and_unknown_stays_unknown() -> None:
    october_end = datetime(2026, 10, 31, 23, tzinfo=UTC)
    samples = [published(october_end, 0, 5), published(at(1), 0, 8), published(at(2), 0, 20)]

    assert month_reads(samples, NOVEMBER, {}) == (15, ["statements"])
    assert month_reads([published(at(1), 0), published(at(2), 0)], NOVEMBER, {}) == (None, [])


def test_unused_after_the_window_without_reads_since_the_first_publish_or_the_first_sample() -> None:
    window = timedelta(days=30)
    first_publish, first_sample = at(1) - timedelta(days=60), at(1)
    quiet_samples = read_intervals([published(at(1), 0, 5), published(at(16), 0, 5)], lambda _s, _e: 0)

    quiet = unread_since(first_publish, quiet_samples, first_sample)
    assert quiet == first_sample, "only watched time counts"
    assert not is_unused(quiet, at(16), window)
    assert is_unused(quiet, first_sample + window, window)
    read = read_intervals([published(at(1), 0, 5), published(at(16), 0, 6)], lambda _s, _e: 0)
    assert unread_since(first_publish, read, first_sample) == at(16)
    assert unread_since(None, read, first_sample) is None, "never published: nothing to judge"

    opened = unused_observation(TABLE, first_sample, first_sample + window, window)
    assert (opened.kind, opened.breached) == (UNUSED, True)
    assert "pause the schedule or retire the pipeline" in opened.summary


def test_a_cost_model_read_back_from_its_variable_is_the_same_and_a_broken_one_names_the_fix() -> None:
    assert CostModel.from_value(MODEL.as_dict(), "variable x") == MODEL
    with pytest.raises(ConfigurationError, match=r"variable x is not a cost model .*run `make apply`"):
        CostModel.from_value({"vcpu": 1}, "variable x")


def test_a_month_is_yyyy_mm_or_a_clear_error() -> None:
    assert (str(Month.parse("2026-02")), Month.parse("2026-02").end) == ("2026-02", datetime(2026, 3, 1, tzinfo=UTC))
    with pytest.raises(ConfigurationError, match=r"month '11/2026' is not YYYY-MM \(e.g. 2026-11\)"):
        Month.parse("11/2026")


def test_budget_and_unread_after_are_declared_values(tmp_path: Path) -> None:
    file = _write_variant(tmp_path, lambda d: d.update(cost={"budget_per_month": 12.5}, value={"unread_after": "7d"}))
    declared = load_pipeline(file, tmp_path).spec
    assert declared.cost.budget_per_month == 12.5
    assert declared.value.unread_after_delta == timedelta(days=7)
    assert find_pipeline("shop_orders").spec.value.unread_after_delta == timedelta(days=30), "the default"


@pytest.mark.parametrize("budget", ["lots", -5, 0, True])
def test_a_bad_budget_is_one_line_naming_the_field_the_value_and_the_fix(tmp_path: Path, budget: object) -> None:
    message = _error_for(tmp_path, lambda d: d.update(cost={"budget_per_month": budget}))
    assert message.startswith("pipelines/shop_orders.yaml: field 'cost.budget_per_month': got ")
    assert "expected a positive amount per month" in message and "remove cost.budget_per_month for no budget" in message


def test_the_cost_table_fits_100_columns_and_says_unknown_for_reads_it_cannot_count() -> None:
    long_name = spec().model_copy(update={"name": "a" * 30})
    months = [
        price(long_name, "prod", NOVEMBER, [RunTime(at(2), 99999)], [published(at(2), 5 * GB)], MODEL, MID_NOVEMBER,
              reads=(123456, ["statements"])),
        price(spec(budget=0.01), "prod", NOVEMBER, [], [], MODEL, MID_NOVEMBER),
    ]

    lines = cost_view.summary(months, colour=False).splitlines()

    assert max(len(line) for line in lines) <= 100
    assert lines[0].split() == ["pipeline", "vCPU-h", "storage", "cost", "projected", "budget", "reads", "per", "read"]
    assert "5.0 GB" in lines[2] and "123456" in lines[2]
    assert lines[3].split()[-2:] == ["unknown", "-"]
