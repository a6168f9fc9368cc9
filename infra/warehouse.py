"""The warehouse as code: schemas, platform tables and each environment's least-privilege roles.

`reconcile` reads the warehouse's catalogs, compares them with what the declared pipelines and the
environment need, and returns one `Change` per difference (a missing privilege is granted, one the roles
hold beyond the policy revoked): with `dry_run` it only reports them (plan), otherwise it makes them in
one transaction (apply). One function for both, so a plan is exactly what
the next apply does, and an apply after an apply returns []. There is no state file: privileges,
default privileges and passwords are all read back from the warehouse itself, through the adapter's role
statements (`shipshape.warehouses.roles`); this module holds only the policy and the plan/apply steps.

Roles, per environment (`Environment.role`), so a bug or a hostile transform can do as little as possible:
- loader: everything up to the gate — creates, writes and drops tables only in `audit`, reads the published
  tables (`{{ this }}`), reads and appends to the ledger and dead letters, takes advisory locks;
- publisher: only the publish step (and rollback) — deletes and inserts published rows, reads the audited tables,
  removes superseded dead letters, keeps the replaced rows in `history` (its own tables there, or the owner's a
  partition exchange moved there) and prunes them;
  it changes a published table's shape only through the owner's functions;
- consumer: reads published tables, nothing else;
- owner (NOLOGIN): owns every published table, so the publisher cannot drop, alter, truncate or grant one. Its
  SECURITY DEFINER functions (`shipshape.warehouses.postgres_ddl`) are the only DDL on them: create on first
  publish, add new columns, widen a type, exchange a partition (it takes the loader's audited table over, so it is
  a member of the loader role; it moves the replaced partition into `history`) and drop such a kept table. Apply
  installs them and hands existing published tables to it.
- monitor: the monitors (the monitor flow, the volume check after a publish) — reads the ledger and is the only
  role that writes incidents, so a hostile transform running as the loader cannot open, close or silence one.
The ledger has row-level security on top of the grants: the loader may append only rows that are not
`published` or `rolled_back` (failed and blocked attempts), the publisher only those two, so the loader cannot
claim a publish that did not happen. The admin owns the table and is not filtered.
An engine without roles (`capabilities.supports_roles` False, e.g. DuckDB): `reconcile` ensures the schemas and
migrates the platform tables only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import partial
from typing import Literal

from deployments.environments import Environment
from infra.changes import Change
from infra.variables import required
from shipshape.catalog import DeclaredPipeline, load_all
from shipshape.ledger import (
    DEAD_LETTER_TABLE,
    HISTORY_INDEX_TABLE,
    INCIDENT_TABLE,
    LEDGER_TABLE,
    PUBLISHED,
    USAGE_SAMPLE_TABLE,
)
from shipshape.names import SCHEMA_VERSION_TABLE
from shipshape.platform_schema import apply_migration, pending
from shipshape.warehouses import AUDIT_SCHEMA, HISTORY_SCHEMA, PLATFORM_SCHEMA, Warehouse, open_warehouse
from shipshape.warehouses.roles import DefaultPrivilege, Grant, OwnerFunctions, RowPolicy

Purpose = Literal["loader", "publisher", "consumer", "monitor"]
PASSWORD_VARIABLES: dict[Purpose, str] = {
    "loader": "SHIPSHAPE_LOADER_PASSWORD",
    "publisher": "SHIPSHAPE_PUBLISHER_PASSWORD",
    "consumer": "SHIPSHAPE_CONSUMER_PASSWORD",
    "monitor": "SHIPSHAPE_MONITOR_PASSWORD",
}


def passwords_from_environment() -> dict[str, str]:
    """The role passwords, keyed by purpose; they live only in the environment, never in the repository."""
    return {purpose: required(name, f"the {purpose} role's password") for purpose, name in PASSWORD_VARIABLES.items()}


def reconcile(
    admin_url: str, env: Environment, passwords: Mapping[str, str], *, dry_run: bool, today: date | None = None
) -> list[Change]:
    """Bring the warehouse at `admin_url` to what `env` and the declared pipelines need; returns what differed.

    `passwords` maps each purpose (loader, publisher, consumer) to its password; unused without roles.
    Everything is computed before anything is changed (an object that does not exist yet holds no
    privileges), so the dry run and the apply report the same list. Tables of earlier `destination.version`s
    whose deprecation period ended by `today` (default: today, UTC) lose their grants and are dropped.
    """
    declared = load_all()
    published = sorted({pipeline.spec.destination.schema_name for pipeline in declared})
    retired = _retired_tables(declared, today or datetime.now(UTC).date())
    with open_warehouse(admin_url) as warehouse, warehouse.transaction():
        steps = list(_structure_steps(warehouse, published))
        tables = _existing_tables(warehouse, published)
        retiring = [(schema, table) for schema, table in retired if table in tables[schema]]
        if warehouse.capabilities.supports_roles:
            steps += _role_steps(warehouse, env, passwords)
            reassigned = _reassigned_tables(warehouse, env.role("owner"), published, retiring)
            steps += _ownership_steps(warehouse, env.role("owner"), reassigned)
            steps += _function_steps(warehouse, _owner_functions(env))
            database = warehouse.current_database()
            current = {schema: [t for t in names if (schema, t) not in retiring] for schema, names in tables.items()}
            grants, defaults = _access_policy(env, database, published, current)
            steps += _grant_steps(warehouse, grants, reassigned)
            platform_roles = [*(env.role(purpose) for purpose in PASSWORD_VARIABLES), env.role("owner")]
            steps += _revoke_steps(warehouse, platform_roles, grants)
            steps += _membership_steps(warehouse, platform_roles, _memberships(warehouse, env))
            steps += _default_privilege_steps(warehouse, defaults)
            steps += _row_security_steps(warehouse, _row_policies(env))
        steps += _retire_steps(warehouse, retiring)
        if not dry_run:
            for step in steps:
                step.make()
    return [step.change for step in steps]


def _retired_tables(declared: list[DeclaredPipeline], today: date) -> list[tuple[str, str]]:
    """Earlier versions' tables whose readers were told to move by now (`Destination.retired_tables`)."""
    return [
        (pipeline.spec.destination.schema_name, table)
        for pipeline in declared
        for table in pipeline.spec.destination.retired_tables(today)
    ]


def _retire_steps(warehouse: Warehouse, retiring: list[tuple[str, str]]) -> Iterator[_Step]:
    """Dropped last, after their grants were revoked above: readers had until `previous_version_until` to move."""
    for schema, table in retiring:
        yield _Step(
            Change("table", f"{schema}.{table}", "delete", "earlier destination.version, deprecation period over"),
            partial(warehouse.drop_table, schema, table),
        )


@dataclass(frozen=True)
class _Step:
    """A change and how to make it: plan reports the changes, apply also makes them, in order."""

    change: Change
    make: Callable[[], object]


def _access_policy(
    env: Environment, database: str, published: list[str], tables: Mapping[str, list[str]]
) -> tuple[list[Grant], list[DefaultPrivilege]]:
    """What each role may do. Tables that exist now get grants; tables created later, default privileges."""
    loader, publisher, consumer = env.role("loader"), env.role("publisher"), env.role("consumer")
    owner = env.role("owner")
    grants = [
        *(Grant("database", (database,), role, ("CONNECT",)) for role in (loader, publisher, consumer)),
        Grant("schema", (AUDIT_SCHEMA,), loader, ("USAGE", "CREATE")),  # its tables: owner, so it may drop them
        Grant("schema", (AUDIT_SCHEMA,), publisher, ("USAGE",)),
        Grant("schema", (PLATFORM_SCHEMA,), loader, ("USAGE",)),
        Grant("schema", (PLATFORM_SCHEMA,), publisher, ("USAGE",)),
        # Reads: planning re-runs and reuse_raw; inserts: dead letters while loading, failed/blocked attempts.
        Grant("table", (PLATFORM_SCHEMA, LEDGER_TABLE), loader, ("SELECT", "INSERT")),
        Grant("table", (PLATFORM_SCHEMA, DEAD_LETTER_TABLE), loader, ("SELECT", "INSERT")),
        # Each run checks the platform tables' version before using them (`platform_schema.ensure_current`).
        Grant("table", (PLATFORM_SCHEMA, SCHEMA_VERSION_TABLE), loader, ("SELECT",)),
        # Read only: information_schema lists a table only to a role holding a privilege on it, and the run's
        # platform schema check must find it there. Writing incidents is the monitor's alone (_monitor_grants).
        Grant("table", (PLATFORM_SCHEMA, INCIDENT_TABLE), loader, ("SELECT",)),
        # Publish writes its ledger rows and deletes superseded dead letters (DELETE ... WHERE needs SELECT);
        # a rollback reads the ledger.
        Grant("table", (PLATFORM_SCHEMA, LEDGER_TABLE), publisher, ("SELECT", "INSERT")),
        # History: the publisher creates (so owns, reads and drops) one table per publish in `history` and notes it;
        # the loader and the consumer get nothing there.
        Grant("schema", (HISTORY_SCHEMA,), publisher, ("USAGE", "CREATE")),
        # A partition exchange moves the replaced partition there as the owner's (its functions alone touch it).
        Grant("schema", (HISTORY_SCHEMA,), owner, ("USAGE", "CREATE")),
        Grant("table", (PLATFORM_SCHEMA, HISTORY_INDEX_TABLE), publisher, ("SELECT", "INSERT", "DELETE")),
        # Only what is kept (ids, partitions, counts, expiry; no row): the loader must see the table to find it
        # exists (information_schema lists only tables a role holds a privilege on), or each run would create it.
        Grant("table", (PLATFORM_SCHEMA, HISTORY_INDEX_TABLE), loader, ("SELECT",)),
        Grant("table", (PLATFORM_SCHEMA, DEAD_LETTER_TABLE), publisher, ("SELECT", "DELETE")),
        *(Grant("table", (AUDIT_SCHEMA, table), publisher, ("SELECT",)) for table in tables[AUDIT_SCHEMA]),
    ]
    grants += _monitor_grants(env, database)
    defaults = [DefaultPrivilege(loader, AUDIT_SCHEMA, publisher, ("SELECT",))]
    for schema in published:
        grants += [
            Grant("schema", (schema,), loader, ("USAGE",)),
            Grant("schema", (schema,), publisher, ("USAGE",)),
            Grant("schema", (schema,), consumer, ("USAGE",)),
            Grant("schema", (schema,), owner, ("USAGE", "CREATE")),  # the first publish creates the table as it
        ]
        for table in tables[schema]:
            grants += [
                Grant("table", (schema, table), loader, ("SELECT",)),
                # replace_partition, merge and full_replace all publish as DELETE ... WHERE + INSERT ... SELECT.
                Grant("table", (schema, table), publisher, ("SELECT", "INSERT", "DELETE")),
                Grant("table", (schema, table), consumer, ("SELECT",)),
            ]
        defaults += [  # what the owner's function creates is granted as the tables above are
            DefaultPrivilege(owner, schema, loader, ("SELECT",)),
            DefaultPrivilege(owner, schema, publisher, ("SELECT", "INSERT", "DELETE")),
            DefaultPrivilege(owner, schema, consumer, ("SELECT",)),
        ]
    return grants, defaults


def _monitor_grants(env: Environment, database: str) -> list[Grant]:
    """The monitors read publishes from the ledger and own the incident state: no other role may write
    incidents, so the loader (which runs a team's transform SQL) can neither open nor silence one."""
    monitor = env.role("monitor")
    return [
        Grant("database", (database,), monitor, ("CONNECT",)),
        Grant("schema", (PLATFORM_SCHEMA,), monitor, ("USAGE",)),
        Grant("table", (PLATFORM_SCHEMA, LEDGER_TABLE), monitor, ("SELECT",)),
        Grant("table", (PLATFORM_SCHEMA, INCIDENT_TABLE), monitor, ("SELECT", "INSERT", "UPDATE")),
        Grant("table", (PLATFORM_SCHEMA, SCHEMA_VERSION_TABLE), monitor, ("SELECT",)),  # the monitor flow checks it
        # storage and reads (`shipshape.usage`): which history tables are whose, and the samples it records
        Grant("table", (PLATFORM_SCHEMA, HISTORY_INDEX_TABLE), monitor, ("SELECT",)),
        Grant("table", (PLATFORM_SCHEMA, USAGE_SAMPLE_TABLE), monitor, ("SELECT", "INSERT")),
    ]


def _row_policies(env: Environment) -> list[RowPolicy]:
    """Which ledger rows each role may read and append: only the publish step (and a rollback, run as the
    publisher) may write a row that changed published data (`published`, `rolled_back`)."""
    loader, publisher = env.role("loader"), env.role("publisher")
    return [
        RowPolicy(PLATFORM_SCHEMA, LEDGER_TABLE, env.role("monitor"), "SELECT"),  # reads every publish, writes none
        RowPolicy(PLATFORM_SCHEMA, LEDGER_TABLE, loader, "SELECT"),
        RowPolicy(PLATFORM_SCHEMA, LEDGER_TABLE, loader, "INSERT", "status", "NOT IN", PUBLISHED),
        # A rollback reads the partition's versions under the destination lock, in its own transaction.
        RowPolicy(PLATFORM_SCHEMA, LEDGER_TABLE, publisher, "SELECT"),
        RowPolicy(PLATFORM_SCHEMA, LEDGER_TABLE, publisher, "INSERT", "status", "IN", PUBLISHED),
    ]


def _structure_steps(warehouse: Warehouse, published: list[str]) -> Iterator[_Step]:
    """Schemas, and the platform tables' pending migrations, made by the admin (their owner) so no pipeline role
    needs CREATE for them. The migrations run in apply's one transaction, each under the platform schema lock, so
    runs starting meanwhile wait for it; a warehouse newer than this code is refused before anything changes.
    """
    for schema in sorted({AUDIT_SCHEMA, PLATFORM_SCHEMA, HISTORY_SCHEMA, *published}):
        if not warehouse.schema_exists(schema):
            yield _Step(Change("schema", schema, "create"), partial(warehouse.ensure_schema, schema))
    if (switch_on := warehouse.statement_statistics_switch()) is not None:  # preloaded: count reads per role
        yield _Step(Change("extension", "statement statistics", "create"), switch_on)
    for migration in pending(warehouse):
        change = Change("migration", f"{PLATFORM_SCHEMA} version {migration.version}", "create", migration.description)
        yield _Step(change, partial(apply_migration, warehouse, migration))


def _existing_tables(warehouse: Warehouse, published: list[str]) -> dict[str, list[str]]:
    return {schema: warehouse.list_tables(schema) for schema in (AUDIT_SCHEMA, *published)}


def _owner_functions(env: Environment) -> OwnerFunctions:
    return OwnerFunctions(env.role("owner"), env.role("loader"), env.role("publisher"))


def _reassigned_tables(
    warehouse: Warehouse, owner: str, published: list[str], retiring: list[tuple[str, str]]
) -> dict[tuple[str, ...], str]:
    """Published tables someone else owns (the publisher created them before the owner role existed; an admin by
    hand), each with its current owner: apply hands them to the owner role, except those it drops (`retiring`)."""
    return {
        (schema, table): current
        for schema in published
        for table, current in warehouse.table_owners(schema).items()
        if current != owner and (schema, table) not in retiring
    }


def _ownership_steps(warehouse: Warehouse, owner: str, reassigned: Mapping[tuple[str, ...], str]) -> Iterator[_Step]:
    for (schema, table), current in reassigned.items():
        yield _Step(
            Change("owner", f"{schema}.{table}", "update", f"from {current} to {owner}"),
            partial(warehouse.set_table_owner, schema, table, owner),
        )


def _function_steps(warehouse: Warehouse, functions: OwnerFunctions) -> Iterator[_Step]:
    """The owner's published-table functions, (re)installed when missing or changed in any way (body, owner,
    settings, who may execute them)."""
    for name, action in warehouse.owner_functions_to_install(functions).items():
        yield _Step(
            Change(
                "function",
                f"{PLATFORM_SCHEMA}.{name}",
                "create" if action == "create" else "update",
                f"as {functions.owner}, run by {functions.publisher}",
            ),
            partial(warehouse.install_owner_function, name, functions),
        )


def _role_steps(warehouse: Warehouse, env: Environment, passwords: Mapping[str, str]) -> Iterator[_Step]:
    """Each role with LOGIN and its password; a password is rewritten only when the stored one differs. Then the
    owner role, which nobody logs in as."""
    for purpose, variable in PASSWORD_VARIABLES.items():
        role, password = env.role(purpose), passwords[purpose]
        if not warehouse.role_exists(role):
            yield _Step(Change("role", role, "create", "LOGIN"), partial(warehouse.create_login_role, role, password))
        elif not warehouse.password_matches(role, password):
            yield _Step(
                Change("password", role, "update", f"from {variable}"), partial(warehouse.set_password, role, password)
            )
    owner = env.role("owner")
    if not warehouse.role_exists(owner):
        yield _Step(Change("role", owner, "create", "NOLOGIN"), partial(warehouse.create_group_role, owner))


def _grant_steps(
    warehouse: Warehouse, grants: list[Grant], reassigned: Mapping[tuple[str, ...], str]
) -> Iterator[_Step]:
    """`reassigned`: a role holds every privilege on a table it owns, and loses them when apply hands the table to
    the owner role (before these grants), so what the policy gives it there is planned as missing."""
    for grant in grants:
        loses_ownership = grant.on == "table" and reassigned.get(grant.path) == grant.role
        missing = list(grant.privileges) if loses_ownership else warehouse.missing_privileges(grant)
        if missing:
            yield _Step(
                Change("grant", f"{', '.join(missing)} on {grant.on} {'.'.join(grant.path)} to {grant.role}", "create"),
                partial(warehouse.grant_privileges, replace(grant, privileges=tuple(missing))),
            )


def _revoke_steps(warehouse: Warehouse, roles: list[str], grants: list[Grant]) -> Iterator[_Step]:
    """Whatever the platform's roles hold on schemas and tables beyond `grants` — a grant by hand, or left by a
    policy that has since narrowed — is revoked, so least privilege is what apply converges to, not a floor.
    """
    allowed = {(grant.on, grant.path, grant.role, privilege) for grant in grants for privilege in grant.privileges}
    for role in roles:
        for held in warehouse.held_privileges(role):
            extra = tuple(
                privilege for privilege in held.privileges if (held.on, held.path, role, privilege) not in allowed
            )
            if extra:
                yield _Step(
                    Change("grant", f"{', '.join(extra)} on {held.on} {'.'.join(held.path)} to {role}", "delete"),
                    partial(warehouse.revoke_privileges, replace(held, privileges=extra)),
                )


def _memberships(warehouse: Warehouse, env: Environment) -> dict[str, dict[str, str]]:
    """member → {group: why}: the only memberships the policy grants.

    - Where publishes exchange partitions, the owner role in the loader role: taking the audited table over (ALTER
      OWNER, before attaching it as a partition) needs the old owner's rights. It gives the loader and the publisher
      nothing: nobody logs in as the owner or is its member, and only its SECURITY DEFINER functions act as it
      (`postgres_ddl`), each doing its one checked thing.
    - The monitor in the engine's `statistics_reader` (PostgreSQL's `pg_read_all_stats`), to count the consumers'
      reads (`shipshape.usage`).
    """
    wanted: dict[str, dict[str, str]] = {}
    if warehouse.capabilities.supports_partition_exchange:
        wanted[env.role("owner")] = {env.role("loader"): "its functions take audited tables over"}
    if reader := warehouse.statistics_reader:
        wanted.setdefault(env.role("monitor"), {})[reader] = ""
    return wanted


def _membership_steps(
    warehouse: Warehouse, roles: list[str], wanted: Mapping[str, Mapping[str, str]]
) -> Iterator[_Step]:
    """The platform's roles are members of exactly the roles in `wanted`: any other membership would hand one every
    privilege of another (`pg_read_all_data`, an admin role) past all the revokes above, so each one found is revoked.
    """
    for role in roles:
        held = warehouse.memberships(role)
        for group in held:
            if group not in wanted.get(role, {}):
                yield _Step(
                    Change("grant", f"role {group} to {role}", "delete"),
                    partial(warehouse.revoke_membership, group, role),
                )
        for group, why in wanted.get(role, {}).items():
            if group not in held:
                yield _Step(
                    Change("grant", f"role {group} to {role}", "create", why),
                    partial(warehouse.grant_membership, group, role),
                )


def _default_privilege_steps(warehouse: Warehouse, defaults: list[DefaultPrivilege]) -> Iterator[_Step]:
    for default in defaults:
        missing = warehouse.missing_default_privileges(default)
        if missing:
            yield _Step(
                Change(
                    "default privilege",
                    f"{', '.join(missing)} on tables {default.owner} creates in {default.schema} to {default.grantee}",
                    "create",
                ),
                partial(warehouse.grant_default_privileges, replace(default, privileges=tuple(missing))),
            )


def _row_security_steps(warehouse: Warehouse, policies: list[RowPolicy]) -> Iterator[_Step]:
    """Row-level security on each table a policy names, every policy not there yet, and every other policy on the
    table dropped: policies for one command are OR-ed, so one added by hand (`WITH CHECK (true)` for the loader)
    would let through all the rows the platform's refuses. Until security is on, a policy filters nothing; once
    on, a role with no policy on the table sees and writes no rows at all.
    """
    for schema, table in dict.fromkeys((policy.schema, policy.table) for policy in policies):
        if not warehouse.row_security_enabled(schema, table):
            yield _Step(
                Change("row security", f"{schema}.{table}", "create"),
                partial(warehouse.enable_row_security, schema, table),
            )
        existing = warehouse.row_policy_names(schema, table)
        declared = [policy for policy in policies if (policy.schema, policy.table) == (schema, table)]
        for policy in declared:
            if policy.name not in existing:
                yield _Step(
                    Change(
                        "row policy",
                        f"{policy.name} on {schema}.{table}",
                        "create",
                        f"{policy.command} {policy.describe()}",
                    ),
                    partial(warehouse.create_row_policy, policy),
                )
        for name in sorted(set(existing) - {policy.name for policy in declared}):
            yield _Step(
                Change("row policy", f"{name} on {schema}.{table}", "delete"),
                partial(warehouse.drop_row_policy, schema, table, name),
            )
