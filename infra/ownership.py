"""What the platform created that the declarations no longer want: the one rule `apply` prunes by.

An object is deleted only when it exists, is no longer declared, and carries the platform's mark: a name
prefix (automations), the platform's tags (deployments) or a place in the environment's record of what
apply created (block documents and work queues carry no tags). Anything else, however its name looks, is
someone else's and is left alone — a removed pipeline stops running and alerting, nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import VariableCreate, VariableUpdate

from infra.changes import Change
from shipshape import names

Existing = TypeVar("Existing")


def prune(
    kind: str,
    existing: Mapping[str, Existing],
    declared: Iterable[str],
    owned: Callable[[str], bool],
    delete: Callable[[Existing], None],
    *,
    dry_run: bool,
) -> list[Change]:
    """Delete (unless `dry_run`) every owned object that exists but is not declared; one `-` change each."""
    wanted = set(declared)
    stale = sorted(name for name in existing if name not in wanted and owned(name))
    if not dry_run:
        for name in stale:
            delete(existing[name])
    return [Change(kind, name, "delete") for name in stale]


def created(client: SyncPrefectClient, environment: str, kind: str) -> set[str]:
    """The objects of `kind` an earlier apply created in `environment` (none before the first apply)."""
    variable = client.read_variable_by_name(names.created_record(environment, kind))
    value = variable.value if variable is not None else None
    return {str(name) for name in value} if isinstance(value, list) else set()


def record_created(client: SyncPrefectClient, environment: str, kind: str, declared: Iterable[str]) -> None:
    """After an apply the platform owns exactly what is declared: whatever else the record listed was just pruned."""
    name = names.created_record(environment, kind)
    value: list[str] = sorted(declared)
    current = client.read_variable_by_name(name)
    if current is None:
        client.create_variable(VariableCreate(name=name, value=value))
    elif current.value != value:
        client.update_variable(VariableUpdate(name=name, value=value))
