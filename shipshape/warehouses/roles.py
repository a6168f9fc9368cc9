"""Login roles, grants and default privileges: the statements behind `infra.warehouse`'s access policy.

The policy (which role may do what) is the platform's and lives in `infra.warehouse`; how an engine stores roles,
password verifiers and privileges is the adapter's. An engine without roles keeps these defaults, which refuse:
callers consult `capabilities.supports_roles` first, so reaching one is a bug, said as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shipshape.errors import WarehouseError

GrantTarget = Literal["database", "schema", "table"]
RowCommand = Literal["SELECT", "INSERT"]


@dataclass(frozen=True)
class Grant:
    """`privileges` that `role` must hold on one database, schema or table (`path`: its name parts)."""

    on: GrantTarget
    path: tuple[str, ...]
    role: str
    privileges: tuple[str, ...]


@dataclass(frozen=True)
class DefaultPrivilege:
    """`privileges` that `grantee` gets on every table `owner` creates in `schema` from now on."""

    owner: str
    schema: str
    grantee: str
    privileges: tuple[str, ...]


@dataclass(frozen=True)
class RowPolicy:
    """Which rows `role` may `command` on a table with row-level security on: those whose `column` is (`IN`) or
    is not (`NOT IN`) one of `values`, or every row when `column` is empty. A grant says which tables; this says
    which rows, so the loader may append failed and blocked attempts to the ledger but never claim a publish.
    """

    schema: str
    table: str
    role: str
    command: RowCommand
    column: str = ""
    operator: Literal["IN", "NOT IN"] = "IN"
    values: tuple[str, ...] = ()

    def describe(self) -> str:
        """The condition as plan output shows it: `status NOT IN (published, rolled_back)`."""
        return f"{self.column} {self.operator} ({', '.join(self.values)})" if self.column else "every row"

    @property
    def name(self) -> str:
        """One policy per role and command on a table: the name says whose it is, so plan output reads alone."""
        return f"{self.role}_{self.command.lower()}"


@dataclass(frozen=True)
class OwnerFunctions:
    """The published-table DDL functions of an environment: they act as `owner` (which owns the published tables),
    read only `loader`'s audit tables, and only `publisher` may run them (`names.PUBLISHED_TABLE_FUNCTIONS`)."""

    owner: str
    loader: str
    publisher: str


class RoleStatements:
    """The role and privilege operations of a warehouse; every one refuses unless an engine overrides it."""

    def current_database(self) -> str:
        """The database this connection is in: the object database-level grants are on."""
        raise self._no_roles()

    def role_exists(self, role: str) -> bool:
        raise self._no_roles()

    def password_matches(self, role: str, password: str) -> bool:
        """Whether `role` logs in with exactly `password` (compared with what the engine stores, never logged)."""
        raise self._no_roles()

    def create_login_role(self, role: str, password: str) -> None:
        raise self._no_roles()

    def set_password(self, role: str, password: str) -> None:
        raise self._no_roles()

    def create_group_role(self, role: str) -> None:
        """A role nobody can log in as: it owns objects, and only code it owns acts with its rights."""
        raise self._no_roles()

    def table_owners(self, schema: str) -> dict[str, str]:
        """Each table of `schema` (plain or partitioned; not views) and the role that owns it."""
        raise self._no_roles()

    def set_table_owner(self, schema: str, table: str, owner: str) -> None:
        raise self._no_roles()

    def owner_functions_to_install(self, functions: OwnerFunctions) -> dict[str, str]:
        """Each of `functions` that is missing (`create`) or differs from the platform's (`update`), by name."""
        raise self._no_roles()

    def install_owner_function(self, name: str, functions: OwnerFunctions) -> None:
        raise self._no_roles()

    def missing_privileges(self, grant: Grant) -> list[str]:
        """The grant's privileges the role does not hold yet, in the grant's order (all of them if nothing exists)."""
        raise self._no_roles()

    def grant_privileges(self, grant: Grant) -> None:
        raise self._no_roles()

    def held_privileges(self, role: str) -> list[Grant]:
        """Every privilege granted to `role` itself on the current database, its schemas and tables, one `Grant`
        per object. Objects it owns are left out: an owner's rights come with ownership, not from a grant, so
        there is nothing to revoke.
        """
        raise self._no_roles()

    def revoke_privileges(self, grant: Grant) -> None:
        raise self._no_roles()

    def memberships(self, role: str) -> list[str]:
        """The roles `role` is a member of: it may act with all of their privileges (PostgreSQL's
        `pg_read_all_data`, say), around any grant on a single object.
        """
        raise self._no_roles()

    def revoke_membership(self, group: str, role: str) -> None:
        raise self._no_roles()

    def grant_membership(self, group: str, role: str) -> None:
        raise self._no_roles()

    def missing_default_privileges(self, default: DefaultPrivilege) -> list[str]:
        raise self._no_roles()

    def grant_default_privileges(self, default: DefaultPrivilege) -> None:
        raise self._no_roles()

    def row_security_enabled(self, schema: str, table: str) -> bool:
        """Whether the table's rows are filtered by policies for every role but its owner (False if no table yet)."""
        raise self._no_roles()

    def enable_row_security(self, schema: str, table: str) -> None:
        raise self._no_roles()

    def row_policy_names(self, schema: str, table: str) -> list[str]:
        """The names of every policy on the table, whoever made it (none if the table does not exist yet)."""
        raise self._no_roles()

    def drop_row_policy(self, schema: str, table: str, name: str) -> None:
        raise self._no_roles()

    def create_row_policy(self, policy: RowPolicy) -> None:
        raise self._no_roles()

    def _no_roles(self) -> WarehouseError:
        return WarehouseError(
            f"{type(self).__name__} has no roles or grants (capabilities.supports_roles is False); "
            "check the capability before managing access"
        )
