"""`rollback`: the UI's form for `shipshape rollback` — restore a partition as an earlier publish left it.

The form: the pipeline is a dropdown of the declared pipelines (the backfill form's `PipelineName`), the partition
a text field (its ledger key, e.g. 2026-11-01), the target version optional (a ledger entry id; empty means the
version before the newest). `list_versions` only shows the partition's versions from the ledger — each with its
entry id, when it was published, rows, and whether its rows are still kept — so the operator can pick one.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_table_artifact

from flows.backfill import PipelineName
from runtime.connections import connect
from shipshape.catalog import find_pipeline
from shipshape.rollback import roll_back, versions


@flow(name="rollback")
def rollback(
    pipeline: PipelineName,
    partition: str = "",
    to_version: str = "",
    undo_flow_run: str = "",
    list_versions: bool = False,
) -> list[dict[str, object]]:
    """Restore one partition (or every partition a run published) as an earlier publish left it, in one transaction.

    Args:
        pipeline: The declared pipeline to roll back.
        partition: The partition's ledger key, e.g. 2026-11-01 (hourly: 2026-11-01T05).
        to_version: The ledger entry id of the publish to restore; empty = the version before the newest.
        undo_flow_run: Instead of a partition: the id of a flow run whose every publish to undo.
        list_versions: Only show the partition's versions from the ledger (entry ids to pick from); change nothing.
    """
    spec = find_pipeline(pipeline).spec
    with connect("publisher") as warehouse:
        if list_versions:
            rows = [version.as_row() for version in versions(warehouse, spec, partition)]
            title = f"{pipeline} partition {partition}: versions, newest first"
        else:
            restored = roll_back(
                warehouse, spec, partition=partition or None, to=to_version or None, run=undo_flow_run or None,
                by=str(runtime.flow_run.id or ""),
            )
            rows = [partition.as_row() for partition in restored]
            title = f"{pipeline}: rolled back {len(rows)} partition(s)"
    get_run_logger().info("%s", title)
    create_table_artifact(key=f"rollback-{pipeline}".replace("_", "-"), table=rows, description=title)
    return rows
