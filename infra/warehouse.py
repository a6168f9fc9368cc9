"""The warehouse as code: schemas, platform tables and each environment's least-privilege roles.

`reconcile` reads the warehouse's catalogs, compares them with what the declared pipelines and the
environment need, and returns one `Change` per difference: with `dry_run` it only reports them (plan),
otherwise it makes them in one transaction (apply). One function for both, so a plan is exactly what
the next apply does, and an apply after an apply returns []. There is no state file: privileges,
default privileges and password verifiers are all read back from PostgreSQL itself.

Roles, per environment (`Environment.role`), so a bug or a hostile transform can do as little as possible:
- loader: everything up to the gate — creates, writes and drops tables only in `audit`, reads the published
  tables (`{{ this }}`), reads and appends to the ledger and dead letters, takes advisory locks;
- publisher: only the publish step — deletes and inserts published rows, creates a destination table on
  first publish, reads the audited tables and removes superseded dead letters;
- consumer: reads published tables, nothing else.
DuckDB has no roles: there `reconcile` ensures the schemas and platform tables only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Literal

from deployments.environments import Environment
from infra.changes import Change
from infra.variables import required
from shipshape.catalog import load_all
from shipshape.ledger import (
    DEAD_LETTER_TABLE,
    INCIDENT_TABLE,
    LEDGER_TABLE,
    ensure_platform_tables,
    missing_platform_tables,
)
from shipshape.warehouses import AUDIT_SCHEMA, PLATFORM_SCHEMA, Warehouse, open_warehouse
from shipshape.warehouses.postgres import PostgresWarehouse

Purpose = Literal["loader", "publisher", "consumer"]
PASSWORD_VARIABLES: dict[Purpose, str] = {
    "loader": "SHIPSHAPE_LOADER_PASSWORD",
    "publisher": "SHIPSHAPE_PUBLISHER_PASSWORD",
    "consumer": "SHIPSHAPE_CONSUMER_PASSWORD",
}
# PostgreSQL's own defaults for new SCRAM verifiers (SCRAM_DEFAULT_SALT_LEN, scram_iterations).
_SCRAM_SALT_BYTES = 16
_SCRAM_ITERATIONS = 4096
_SCRAM_VERIFIER = re.compile(r"SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+")


def passwords_from_environment() -> dict[str, str]:
    """The three role passwords, keyed by purpose; they live only in the environment, never in the repository."""
    return {purpose: required(name, f"the {purpose} role's password") for purpose, name in PASSWORD_VARIABLES.items()}


def reconcile(admin_url: str, env: Environment, passwords: Mapping[str, str], *, dry_run: bool) -> list[Change]:
    """Bring the warehouse at `admin_url` to what `env` and the declared pipelines need; returns what differed.

    `passwords` maps each purpose (loader, publisher, consumer) to its password; unused on DuckDB.
    Everything is computed before anything is changed (an object that does not exist yet holds no
    privileges), so the dry run and the apply report the same list.
    """
    published = sorted({declared.spec.destination.schema_name for declared in load_all()})
    with open_warehouse(admin_url) as warehouse, warehouse.transaction():
        steps = list(_structure_steps(warehouse, published))
        if isinstance(warehouse, PostgresWarehouse):  # roles, grants and verifiers are PostgreSQL's own catalogs
            steps += _role_steps(warehouse, env, passwords)
            database = warehouse.fetch_all("SELECT current_database()")[0][0]
            grants, defaults = _access_policy(env, database, published, _existing_tables(warehouse, published))
            steps += _grant_steps(warehouse, grants)
            steps += _default_privilege_steps(warehouse, defaults)
        if not dry_run:
            for step in steps:
                step.make()
    return [step.change for step in steps]


@dataclass(frozen=True)
class _Step:
    """A change and how to make it: plan reports the changes, apply also makes them, in order."""

    change: Change
    make: Callable[[], None]


@dataclass(frozen=True)
class _Grant:
    """`privileges` that `role` must hold on one database, schema or table (`path`: its name parts)."""

    on: Literal["database", "schema", "table"]
    path: tuple[str, ...]
    role: str
    privileges: tuple[str, ...]


@dataclass(frozen=True)
class _DefaultPrivilege:
    """`privileges` that `grantee` gets on every table `owner` creates in `schema` from now on."""

    owner: str
    schema: str
    grantee: str
    privileges: tuple[str, ...]


def _access_policy(
    env: Environment, database: str, published: list[str], tables: Mapping[str, list[str]]
) -> tuple[list[_Grant], list[_DefaultPrivilege]]:
    """What each role may do. Tables that exist now get grants; tables created later, default privileges."""
    loader, publisher, consumer = env.role("loader"), env.role("publisher"), env.role("consumer")
    grants = [
        *(_Grant("database", (database,), role, ("CONNECT",)) for role in (loader, publisher, consumer)),
        _Grant("schema", (AUDIT_SCHEMA,), loader, ("USAGE", "CREATE")),  # its tables: owner, so it may drop them
        _Grant("schema", (AUDIT_SCHEMA,), publisher, ("USAGE",)),
        _Grant("schema", (PLATFORM_SCHEMA,), loader, ("USAGE",)),
        _Grant("schema", (PLATFORM_SCHEMA,), publisher, ("USAGE",)),
        # Reads: planning re-runs and reuse_raw; inserts: dead letters while loading, failed/blocked attempts.
        _Grant("table", (PLATFORM_SCHEMA, LEDGER_TABLE), loader, ("SELECT", "INSERT")),
        _Grant("table", (PLATFORM_SCHEMA, DEAD_LETTER_TABLE), loader, ("SELECT", "INSERT")),
        # Monitors (volume after a publish, the monitor flow) open and resolve incidents.
        _Grant("table", (PLATFORM_SCHEMA, INCIDENT_TABLE), loader, ("SELECT", "INSERT", "UPDATE")),
        # Publish writes its ledger rows and deletes superseded dead letters (DELETE ... WHERE needs SELECT).
        _Grant("table", (PLATFORM_SCHEMA, LEDGER_TABLE), publisher, ("INSERT",)),
        _Grant("table", (PLATFORM_SCHEMA, DEAD_LETTER_TABLE), publisher, ("SELECT", "DELETE")),
        *(_Grant("table", (AUDIT_SCHEMA, table), publisher, ("SELECT",)) for table in tables[AUDIT_SCHEMA]),
    ]
    defaults = [_DefaultPrivilege(loader, AUDIT_SCHEMA, publisher, ("SELECT",))]
    for schema in published:
        grants += [
            _Grant("schema", (schema,), loader, ("USAGE",)),
            _Grant("schema", (schema,), publisher, ("USAGE", "CREATE")),  # the first publish creates the table
            _Grant("schema", (schema,), consumer, ("USAGE",)),
        ]
        for table in tables[schema]:
            grants += [
                _Grant("table", (schema, table), loader, ("SELECT",)),
                # replace_partition, merge and full_replace all publish as DELETE ... WHERE + INSERT ... SELECT.
                _Grant("table", (schema, table), publisher, ("SELECT", "INSERT", "DELETE")),
                _Grant("table", (schema, table), consumer, ("SELECT",)),
            ]
        defaults += [
            _DefaultPrivilege(publisher, schema, loader, ("SELECT",)),
            _DefaultPrivilege(publisher, schema, consumer, ("SELECT",)),
        ]
    return grants, defaults


def _structure_steps(warehouse: Warehouse, published: list[str]) -> Iterator[_Step]:
    """Schemas and platform tables, created by the admin (their owner) so no pipeline role needs CREATE for them."""
    for schema in sorted({AUDIT_SCHEMA, PLATFORM_SCHEMA, *published}):
        if not warehouse.schema_exists(schema):
            yield _Step(Change("schema", schema, "create"), partial(warehouse.ensure_schema, schema))
    for table in missing_platform_tables(warehouse):
        # ensure_platform_tables creates every missing one; for the next table it finds nothing left to do.
        yield _Step(Change("table", f"{PLATFORM_SCHEMA}.{table}", "create"), partial(ensure_platform_tables, warehouse))


def _existing_tables(warehouse: Warehouse, published: list[str]) -> dict[str, list[str]]:
    return {schema: warehouse.list_tables(schema) for schema in (AUDIT_SCHEMA, *published)}


def _role_steps(warehouse: Warehouse, env: Environment, passwords: Mapping[str, str]) -> Iterator[_Step]:
    """Each role with LOGIN and its password; a password is rewritten only when the stored verifier differs."""
    for purpose, variable in PASSWORD_VARIABLES.items():
        role, password = env.role(purpose), passwords[purpose]
        stored = warehouse.fetch_all("SELECT rolpassword FROM pg_authid WHERE rolname = ?", [role])
        if not stored:
            statement = f"CREATE ROLE {warehouse.quote(role)} LOGIN PASSWORD '{_new_verifier(password)}'"
            yield _Step(Change("role", role, "create", "LOGIN"), partial(warehouse.execute, statement))
        elif not _verifies(stored[0][0], password):
            statement = f"ALTER ROLE {warehouse.quote(role)} PASSWORD '{_new_verifier(password)}'"
            yield _Step(Change("password", role, "update", f"from {variable}"), partial(warehouse.execute, statement))


def _grant_steps(warehouse: Warehouse, grants: list[_Grant]) -> Iterator[_Step]:
    for grant in grants:
        missing = _missing_privileges(warehouse, grant)
        if missing:
            quoted = ".".join(warehouse.quote(part) for part in grant.path)
            yield _Step(
                Change("grant", f"{', '.join(missing)} on {grant.on} {'.'.join(grant.path)} to {grant.role}", "create"),
                partial(
                    warehouse.execute,
                    f"GRANT {', '.join(missing)} ON {grant.on.upper()} {quoted} TO {warehouse.quote(grant.role)}",
                ),
            )


# The oid of the object a grant is on, from its name parts (`_Grant.path`).
_OBJECT_OID = {
    "database": "(SELECT oid FROM pg_database WHERE datname = ?)",
    "schema": "(SELECT oid FROM pg_namespace WHERE nspname = ?)",
    "table": "(SELECT c.oid FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
    "WHERE n.nspname = ? AND c.relname = ?)",
}


def _missing_privileges(warehouse: Warehouse, grant: _Grant) -> list[str]:
    """The grant's privileges the role does not hold yet.

    Asked by oid: has_*_privilege then answers NULL instead of raising for a role or an object that
    does not exist yet, so a plan on an empty database lists every privilege apply will grant.
    """
    lacking = warehouse.fetch_all(
        "SELECT privilege FROM unnest(?::text[]) AS privilege "
        f"WHERE NOT coalesce(has_{grant.on}_privilege((SELECT oid FROM pg_roles WHERE rolname = ?), "
        f"{_OBJECT_OID[grant.on]}, privilege), false)",
        [list(grant.privileges), grant.role, *grant.path],
    )
    return [privilege for privilege in grant.privileges if (privilege,) in lacking]


def _default_privilege_steps(warehouse: Warehouse, defaults: list[_DefaultPrivilege]) -> Iterator[_Step]:
    for default in defaults:
        held = warehouse.fetch_all(
            "SELECT acl.privilege_type FROM pg_default_acl AS d "
            "JOIN pg_namespace AS n ON n.oid = d.defaclnamespace "
            "JOIN pg_roles AS owner ON owner.oid = d.defaclrole "
            "CROSS JOIN LATERAL aclexplode(d.defaclacl) AS acl "
            "JOIN pg_roles AS grantee ON grantee.oid = acl.grantee "
            "WHERE d.defaclobjtype = 'r' AND owner.rolname = ? AND n.nspname = ? AND grantee.rolname = ?",
            [default.owner, default.schema, default.grantee],
        )
        missing = [privilege for privilege in default.privileges if (privilege,) not in held]
        if missing:
            yield _Step(
                Change(
                    "default privilege",
                    f"{', '.join(missing)} on tables {default.owner} creates in {default.schema} to {default.grantee}",
                    "create",
                ),
                partial(
                    warehouse.execute,
                    f"ALTER DEFAULT PRIVILEGES FOR ROLE {warehouse.quote(default.owner)} "
                    f"IN SCHEMA {warehouse.quote(default.schema)} "
                    f"GRANT {', '.join(missing)} ON TABLES TO {warehouse.quote(default.grantee)}",
                ),
            )


def _verifies(stored: str | None, password: str) -> bool:
    """Whether PostgreSQL's stored SCRAM-SHA-256 verifier is this password's (recomputed with its salt and count)."""
    match = _SCRAM_VERIFIER.fullmatch(stored or "")
    if not match:
        return False  # no password, or an md5 one: set a SCRAM verifier
    return hmac.compare_digest(_scram_verifier(password, base64.b64decode(match[2]), int(match[1])), match[0])


def _new_verifier(password: str) -> str:
    """A fresh verifier: the server stores it as is, so the plain password never appears in its statement log.

    It is base64 and `$:` only, so it goes into a SQL literal without escaping.
    """
    return _scram_verifier(password, os.urandom(_SCRAM_SALT_BYTES), _SCRAM_ITERATIONS)


def _scram_verifier(password: str, salt: bytes, iterations: int) -> str:
    """RFC 5802/7677 in PostgreSQL's format: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.

    PostgreSQL SASLprep-normalises non-ASCII passwords first; they would compare as different and be
    rewritten on each apply (still correct, just never reported unchanged).
    """
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    encoded = [base64.b64encode(part).decode() for part in (salt, stored_key, server_key)]
    return f"SCRAM-SHA-256${iterations}:{encoded[0]}${encoded[1]}:{encoded[2]}"
