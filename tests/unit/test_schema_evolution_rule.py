"""The additive-evolution rule (`shipshape.schema_evolution`): what publish may change in a published table."""

from __future__ import annotations

import pytest

from shipshape.schema_evolution import ColumnShape, compare, widens


def shape(data_type: str, length: int | None = None, precision: int | None = None, scale: int | None = None,
          name: str = "c") -> ColumnShape:  # fmt: skip
    return ColumnShape(name, data_type, length, precision, scale)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (shape("integer"), shape("bigint")),
        (shape("smallint"), shape("integer")),
        (shape("real"), shape("double precision")),
        (shape("float"), shape("double")),  # DuckDB's spelling
        (shape("numeric", precision=12, scale=2), shape("numeric", precision=14, scale=2)),
        (shape("decimal", precision=12, scale=2), shape("decimal", precision=13, scale=3)),
        (shape("numeric", precision=12, scale=2), shape("numeric")),  # unconstrained holds anything
        (shape("character varying", length=10), shape("character varying", length=40)),
        (shape("character varying", length=10), shape("text")),
        (shape("integer"), shape("double precision")),  # as `shipshape diff` calls it additive
        (shape("integer"), shape("numeric", precision=12, scale=2)),
        (shape("bigint"), shape("decimal", precision=19, scale=0)),
    ],
)
def test_a_type_that_holds_every_old_value_widens(old: ColumnShape, new: ColumnShape) -> None:
    assert widens(old, new)
    assert not widens(new, old), "the way back narrows"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (shape("bigint"), shape("bigint")),
        (shape("integer"), shape("numeric", precision=11, scale=2)),  # 9 integer digits: not all of integer's
        (shape("double precision"), shape("bigint")),
        (shape("numeric", precision=12, scale=2), shape("numeric", precision=13, scale=4)),  # fewer integer digits
        (shape("numeric"), shape("numeric", precision=38, scale=2)),
        (shape("text"), shape("varchar")),  # the same type on both engines
        (shape("date"), shape("timestamp with time zone")),
    ],
)
def test_anything_else_does_not_widen(old: ColumnShape, new: ColumnShape) -> None:
    assert not widens(old, new)


def test_compare_sorts_each_column_into_added_widened_removed_or_changed() -> None:
    published = [shape("bigint", name="id"), shape("integer", name="qty"), shape("text", name="gone"),
                 shape("bigint", name="small")]  # fmt: skip
    produced = [shape("bigint", name="id"), shape("bigint", name="qty"), shape("integer", name="small"),
                shape("varchar", name="coupon_code")]  # fmt: skip

    change = compare(published, produced)

    assert change.refused
    assert change.describe() == (
        "added coupon_code (text); widened qty integer → bigint; removed gone (text); changed small bigint → integer"
    )
    assert [(o.column, o.detail, o.blocking) for o in change.outcomes()] == [
        ("coupon_code", "added (text)", False),
        ("qty", "widened integer → bigint", False),
    ]
    assert not compare(published, published)
