"""Decisions the engine makes without Prefect or a warehouse: reject thresholds and hard volume bounds."""

from __future__ import annotations

import pytest

from shipshape.declaration import Rejects, Volume
from shipshape.errors import RejectThresholdError
from shipshape.rejects import early_stop_limit, enforce_threshold, over_threshold
from shipshape.volume import bound_checks


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
