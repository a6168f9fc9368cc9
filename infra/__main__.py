"""`python -m infra plan|apply --env <dev|staging|prod>`: one environment's infrastructure, as code.

The Prefect API PREFECT_API_URL names is marked for the environment on its first apply, and an API marked for
another environment is refused before anything changes (`infra/api_mark.py`). Prefect side: work pool, blocks,
automations; the platform's objects of removed pipelines are deleted (`- deployment …`), never anything it did
not create. Warehouse side (on SHIPSHAPE_WAREHOUSE_ADMIN_URL, an owner connection used for nothing else):
schemas, platform tables, least-privilege roles. `plan` prints what `apply` would change; `apply` changes it; a
second apply prints "no changes". Warehouse first: the blocks name its roles.
"""

from __future__ import annotations

import argparse
import sys

from prefect.client.orchestration import get_client

from deployments.environments import ENVIRONMENTS, Environment, environment
from infra import api_mark, automations, blocks, cost_model, deployed, warehouse, work_pools
from infra.changes import Change
from infra.variables import required
from shipshape.errors import ShipshapeError


def reconcile(env_name: str, *, dry_run: bool) -> list[Change]:
    env = environment(env_name)
    changes = api_mark.claim(env, dry_run=dry_run)  # first: on another environment's API nothing is changed
    changes += warehouse.reconcile(
        required("SHIPSHAPE_WAREHOUSE_ADMIN_URL", "the warehouse's schemas and roles (an owner connection URL)"),
        env,
        warehouse.passwords_from_environment(),
        dry_run=dry_run,
    )
    return changes + reconcile_prefect(env, dry_run=dry_run)


def reconcile_prefect(env: Environment, *, dry_run: bool) -> list[Change]:
    """The Prefect side: pool and queues, blocks, automations, and the deployments of removed pipelines."""
    with get_client(sync_client=True) as client:
        changes = work_pools.reconcile(client, env, dry_run=dry_run)
        changes += cost_model.reconcile(client, env, dry_run=dry_run)
        changes += blocks.reconcile(env, dry_run=dry_run)
        changes += automations.reconcile(env, dry_run=dry_run)
        changes += deployed.reconcile(client, env, dry_run=dry_run)
    return changes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["plan", "apply"])
    parser.add_argument("--env", required=True, choices=sorted(ENVIRONMENTS), help="environment to plan or apply")
    args = parser.parse_args(argv)
    try:
        changes = reconcile(args.env, dry_run=args.command == "plan")
    except ShipshapeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    verb = "would change" if args.command == "plan" else "changed"
    print("\n".join(str(change) for change in changes) or "no changes")
    print(f"{args.env}: {verb} {len(changes)} object(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
