"""Decisions the engine makes without Prefect or a warehouse: reject thresholds, hard volume bounds, the
rules against empty and shrinking publishes, and a merge's key rules."""

from __future__ import annotations

import pytest

from shipshape.audit import AuditResult
from shipshape.declaration import Rejects, Volume
from shipshape.errors import RejectThresholdError
from shipshape.merge_keys import NULL_KEY_CHECK, REPEATED_KEY_CHECK, KeyCounts, key_checks
from shipshape.rejects import early_stop_limit, enforce_threshold, over_threshold
from shipshape.volume import EMPTY_CHECK, SHRINK_CHECK, Replaced, bound_checks, loss_checks, shrink_check


def test_an_absolute_limit_stops_reading_early_and_a_fraction_reads_everything() -> None:
    assert early_stop_limit(Rejects(max_rows=5)) == 5
    assert early_stop_limit(Rejects(max_rows=5, max_fraction=0.1)) is None


@pytest.mark.parametrize(
    ("rejects", "rejected", "loaded", "over"),
    [
        (Rejects(), 0, 100, False),
        (Rejects(), 1, 100, True),
        (Rejects(max_rows=3), 3, 100, False),
        (Rejects(max_rows=3), 4, 100, True),
        (Rejects(max_fraction=0.1), 10, 90, False),  # exactly 10% is allowed
        (Rejects(max_fraction=0.1), 11, 89, True),
        (Rejects(max_rows=1000, max_fraction=0.01), 5, 95, True),  # the fraction wins over max_rows
        (Rejects(max_fraction=0.0), 0, 0, False),  # an empty partition rejects nothing
    ],
)
def test_the_threshold_is_the_declared_one(rejects: Rejects, rejected: int, loaded: int, over: bool) -> None:
    assert over_threshold(rejects, rejected, loaded) is over


def test_over_the_threshold_the_error_says_where_the_rows_are_and_what_to_change() -> None:
    with pytest.raises(RejectThresholdError) as raised:
        enforce_threshold(
            Rejects(max_fraction=0.05), 3, 7, "column 'amount': not a decimal", "pipeline p, partition d", "ab12cd34"
        )
    assert str(raised.value) == (
        "pipeline p, partition d: 3 rows failed type conversion (allowed: 5.0% of rows; first: column 'amount': "
        "not a decimal). They are in platform.dead_letters (run_tag 'ab12cd34'). Nothing was published; fix the "
        "source or raise 'rejects' in the declaration"
    )
    enforce_threshold(Rejects(max_rows=3), 3, 7, "irrelevant", "pipeline p, partition d", "ab12cd34")


def test_no_declared_bounds_add_no_check() -> None:
    assert bound_checks(Volume(), 0) == []


@pytest.mark.parametrize(("rows", "blocking"), [(9, True), (10, False), (20, False), (21, True)])
def test_declared_bounds_block_outside_and_pass_inside(rows: int, blocking: bool) -> None:
    [check] = bound_checks(Volume(min_rows=10, max_rows=20), rows)
    assert (check.blocking, check.outcome, check.measured) == (blocking, "failed" if blocking else "passed", rows)
    assert check.detail == "expected between 10 and 20 rows"


def test_a_lower_bound_alone_leaves_the_top_open() -> None:
    [check] = bound_checks(Volume(min_rows=1), 10**9)
    assert not check.blocking and check.detail == "expected between 1 and inf rows"


@pytest.mark.parametrize(
    ("volume", "rows", "blocking"),
    [
        (Volume(), 0, True),  # the default: an empty partition never publishes silently
        (Volume(), 1, False),
        (Volume(allow_empty=True), 0, False),
        (Volume(allow_empty=True), 5, False),
    ],
)
def test_no_rows_block_unless_the_declaration_allows_empty(volume: Volume, rows: int, blocking: bool) -> None:
    empty, _ = loss_checks(volume, rows, Replaced("analytics.t", 0, rows))
    assert (empty.name, empty.check_type, empty.blocking, empty.measured) == (EMPTY_CHECK, "volume", blocking, rows)
    assert empty.outcome == ("failed" if blocking else "passed")


def test_an_empty_block_says_how_to_allow_it() -> None:
    empty, _ = loss_checks(Volume(), 0, Replaced("analytics.t", 0, 0))
    assert empty.threshold == "must be greater than 0; volume.allow_empty: true allows 0"
    assert "volume.allow_empty: true" in empty.detail


@pytest.mark.parametrize(
    ("max_shrink", "before", "after", "blocking"),
    [
        (0.5, 100, 50, False),  # exactly half is the limit, still allowed
        (0.5, 100, 49, True),
        (0.5, 101, 50, True),  # 50 of 101 is 50.5% fewer
        (0.5, 100, 0, True),
        (0.5, 100, 500, False),  # growing is never shrinking
        (0.7, 10, 3, False),  # exact: 30% of 10 is 3, not 3.0000000000000004
        (0.7, 10, 2, True),
        (0.0, 100, 99, True),  # max_shrink 0: not one row fewer
        (0.0, 100, 100, False),
        (1.0, 100, 0, False),  # max_shrink 1: any shrink, even to nothing
        (0.5, 0, 0, False),  # nothing published yet: nothing to shrink
    ],
)
def test_a_publish_may_shrink_what_it_replaces_by_at_most_max_shrink(
    max_shrink: float, before: int, after: int, blocking: bool
) -> None:
    check = shrink_check(Volume(max_shrink=max_shrink), Replaced("analytics.t", before, after))
    assert (check.name, check.blocking, check.measured) == (SHRINK_CHECK, blocking, after)
    assert check.outcome == ("failed" if blocking else "passed")


def test_a_shrink_block_names_the_scope_the_counts_and_the_setting() -> None:
    check = shrink_check(Volume(), Replaced("partition 2026-11-05 of analytics.fct_orders", 2400, 300))
    assert check.threshold == (
        "must be at least 1200 of the 2400 rows now in partition 2026-11-05 of analytics.fct_orders "
        "(volume.max_shrink 0.5)"
    )
    assert check.detail == (
        "partition 2026-11-05 of analytics.fct_orders holds 2400 rows; this publish leaves 300 (88% fewer); "
        "volume.max_shrink 0.5 allows 50% fewer"
    )


def test_the_default_allows_no_empty_publish_and_halving_at_most() -> None:
    assert (Volume().allow_empty, Volume().max_shrink) == (False, 0.5)


def test_merge_keys_that_are_never_null_and_unique_pass_both_checks() -> None:
    checks = key_checks(["order_id"], KeyCounts(null_rows=0, repeated_keys=0, repeated_rows=0))

    assert [(check.name, check.outcome, check.blocking, check.measured) for check in checks] == [
        (NULL_KEY_CHECK, "passed", False, 0),
        (REPEATED_KEY_CHECK, "passed", False, 0),
    ]
    assert AuditResult(checks).passed


def test_null_merge_keys_block_and_say_why_a_rerun_would_duplicate_them() -> None:
    checks = key_checks(["order_id"], KeyCounts(null_rows=3, repeated_keys=0, repeated_rows=0))

    result = AuditResult(checks)
    assert not result.passed
    assert [check.name for check in checks if check.blocking] == [NULL_KEY_CHECK]
    assert result.failed_summary().startswith(
        "merge key: not NULL=3 (merge key (order_id) is NULL in 3 rows; a NULL key matches no published row"
    )
    assert checks[0].column == "order_id"


def test_repeated_merge_keys_block_with_how_many_keys_and_rows() -> None:
    checks = key_checks(["region", "order_id"], KeyCounts(null_rows=0, repeated_keys=2, repeated_rows=5))

    assert [check.name for check in checks if check.blocking] == [REPEATED_KEY_CHECK]
    assert checks[1].measured == 2
    assert checks[1].column is None  # a composite key belongs to no single column
    assert checks[1].detail.startswith("merge key (region, order_id) repeats: 2 keys, 5 rows; ")
    assert "one row per key" in AuditResult(checks).failed_summary()
