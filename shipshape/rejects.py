"""How many rows of a partition may fail type conversion before the run stops: a decision, not a Prefect step.

`rejects.max_fraction` (of the partition's rows) wins over `rejects.max_rows` when both are declared. The
fraction needs the partition's full count, so only the absolute limit may stop reading early.
"""

from __future__ import annotations

from shipshape.declaration import Rejects
from shipshape.errors import RejectThresholdError


def early_stop_limit(rejects: Rejects) -> int | None:
    """Stop reading the source once more rows than this were rejected; None: read everything first."""
    return None if rejects.max_fraction is not None else rejects.max_rows


def over_threshold(rejects: Rejects, rejected: int, loaded: int) -> bool:
    """Whether `rejected` rows out of `rejected + loaded` exceed what the declaration allows."""
    if rejects.max_fraction is None:
        return rejected > rejects.max_rows
    total = rejected + loaded
    return total > 0 and rejected / total > rejects.max_fraction


def enforce_threshold(
    rejects: Rejects, rejected: int, loaded: int, first_reason: str, where: str, run_tag: str
) -> None:
    """Raise `RejectThresholdError` (what happened, where the rows are, what to change) when over the threshold.

    `where` names the pipeline and partition, e.g. "pipeline shop_orders, partition 2026-11-05".
    """
    if not over_threshold(rejects, rejected, loaded):
        return
    allowed = f"{rejects.max_fraction:.1%} of rows" if rejects.max_fraction is not None else f"{rejects.max_rows} rows"
    raise RejectThresholdError(
        f"{where}: {rejected} rows failed type conversion (allowed: {allowed}; first: {first_reason}). "
        f"They are in platform.dead_letters (run_tag {run_tag!r}). "
        "Nothing was published; fix the source or raise 'rejects' in the declaration"
    )
