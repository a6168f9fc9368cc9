"""PostgreSQL's roles, grants and default privileges, read from and written to its own catalogs.

Passwords are compared with and set as SCRAM-SHA-256 verifiers computed here, so no plain password ever
reaches a statement (and the server's statement log), and an unchanged password is recognised as unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from shipshape.warehouses.base import Warehouse
from shipshape.warehouses.roles import DefaultPrivilege, Grant, GrantTarget, RowPolicy

# PostgreSQL's own defaults for new SCRAM verifiers (SCRAM_DEFAULT_SALT_LEN, scram_iterations).
_SCRAM_SALT_BYTES = 16
_SCRAM_ITERATIONS = 4096
_SCRAM_VERIFIER = re.compile(r"SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+")

# The oid of the object a grant is on, from its name parts (`Grant.path`).
_OBJECT_OID = {
    "database": "(SELECT oid FROM pg_database WHERE datname = ?)",
    "schema": "(SELECT oid FROM pg_namespace WHERE nspname = ?)",
    "table": "(SELECT c.oid FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
    "WHERE n.nspname = ? AND c.relname = ?)",
}

# Privileges granted to a role (by name) on this database and on schemas and tables (incl. views, partitioned and
# foreign tables) it does not own: target, name, table name ('' unless a table), privilege.
_HELD_PRIVILEGES = (
    "SELECT 'database', d.datname, '', acl.privilege_type FROM pg_database AS d "
    "CROSS JOIN LATERAL aclexplode(d.datacl) AS acl JOIN pg_roles AS r ON r.oid = acl.grantee "
    "WHERE r.rolname = ? AND d.datname = current_database() AND d.datdba <> r.oid "
    "UNION ALL "
    "SELECT 'schema', n.nspname, '', acl.privilege_type FROM pg_namespace AS n "
    "CROSS JOIN LATERAL aclexplode(n.nspacl) AS acl JOIN pg_roles AS r ON r.oid = acl.grantee "
    "WHERE r.rolname = ? AND n.nspowner <> r.oid "
    "UNION ALL "
    "SELECT 'table', n.nspname, c.relname, acl.privilege_type FROM pg_class AS c "
    "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
    "CROSS JOIN LATERAL aclexplode(c.relacl) AS acl JOIN pg_roles AS r ON r.oid = acl.grantee "
    "WHERE r.rolname = ? AND c.relowner <> r.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
    "ORDER BY 1, 2, 3, 4"
)


class PostgresRoles(Warehouse):
    """The role statements of `PostgresWarehouse`, kept apart so the adapter module stays about connections."""

    def current_database(self) -> str:
        return str(self.fetch_all("SELECT current_database()")[0][0])

    def role_exists(self, role: str) -> bool:
        return bool(self.fetch_all("SELECT 1 FROM pg_roles WHERE rolname = ?", [role]))

    def password_matches(self, role: str, password: str) -> bool:
        stored = self.fetch_all("SELECT rolpassword FROM pg_authid WHERE rolname = ?", [role])
        return bool(stored) and _verifies(stored[0][0], password)

    def create_login_role(self, role: str, password: str) -> None:
        self.execute(f"CREATE ROLE {self.quote(role)} LOGIN PASSWORD '{_new_verifier(password)}'")

    def set_password(self, role: str, password: str) -> None:
        self.execute(f"ALTER ROLE {self.quote(role)} PASSWORD '{_new_verifier(password)}'")

    def create_group_role(self, role: str) -> None:
        self.execute(f"CREATE ROLE {self.quote(role)} NOLOGIN")

    def table_owners(self, schema: str) -> dict[str, str]:
        found = self.fetch_all(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relkind IN ('r', 'p') ORDER BY 1",
            [schema],
        )
        return {str(table): str(owner) for table, owner in found}

    def set_table_owner(self, schema: str, table: str, owner: str) -> None:
        self.execute(f"ALTER TABLE {self.qualified(schema, table)} OWNER TO {self.quote(owner)}")

    def missing_privileges(self, grant: Grant) -> list[str]:
        """Asked by oid: has_*_privilege then answers NULL instead of raising for a role or an object that
        does not exist yet, so a plan on an empty database lists every privilege apply will grant.
        """
        lacking = self.fetch_all(
            "SELECT privilege FROM unnest(?::text[]) AS privilege "
            f"WHERE NOT coalesce(has_{grant.on}_privilege((SELECT oid FROM pg_roles WHERE rolname = ?), "
            f"{_OBJECT_OID[grant.on]}, privilege), false)",
            [list(grant.privileges), grant.role, *grant.path],
        )
        return [privilege for privilege in grant.privileges if (privilege,) in lacking]

    def grant_privileges(self, grant: Grant) -> None:
        quoted = ".".join(self.quote(part) for part in grant.path)
        self.execute(f"GRANT {', '.join(grant.privileges)} ON {grant.on.upper()} {quoted} TO {self.quote(grant.role)}")

    def held_privileges(self, role: str) -> list[Grant]:
        by_object: dict[tuple[GrantTarget, tuple[str, ...]], list[str]] = {}
        for on, name, table, privilege in self.fetch_all(_HELD_PRIVILEGES, [role, role, role]):
            path = (name, table) if table else (name,)
            by_object.setdefault((on, path), []).append(privilege)
        return [Grant(on, path, role, tuple(privileges)) for (on, path), privileges in by_object.items()]

    def revoke_privileges(self, grant: Grant) -> None:
        quoted = ".".join(self.quote(part) for part in grant.path)
        self.execute(
            f"REVOKE {', '.join(grant.privileges)} ON {grant.on.upper()} {quoted} FROM {self.quote(grant.role)}"
        )

    def memberships(self, role: str) -> list[str]:
        found = self.fetch_all(
            "SELECT g.rolname FROM pg_auth_members AS m JOIN pg_roles AS g ON g.oid = m.roleid "
            "JOIN pg_roles AS r ON r.oid = m.member WHERE r.rolname = ? ORDER BY 1",
            [role],
        )
        return [str(group) for (group,) in found]

    def revoke_membership(self, group: str, role: str) -> None:
        self.execute(f"REVOKE {self.quote(group)} FROM {self.quote(role)}")

    def grant_membership(self, group: str, role: str) -> None:
        self.execute(f"GRANT {self.quote(group)} TO {self.quote(role)}")

    def missing_default_privileges(self, default: DefaultPrivilege) -> list[str]:
        held = self.fetch_all(
            "SELECT acl.privilege_type FROM pg_default_acl AS d "
            "JOIN pg_namespace AS n ON n.oid = d.defaclnamespace "
            "JOIN pg_roles AS owner ON owner.oid = d.defaclrole "
            "CROSS JOIN LATERAL aclexplode(d.defaclacl) AS acl "
            "JOIN pg_roles AS grantee ON grantee.oid = acl.grantee "
            "WHERE d.defaclobjtype = 'r' AND owner.rolname = ? AND n.nspname = ? AND grantee.rolname = ?",
            [default.owner, default.schema, default.grantee],
        )
        return [privilege for privilege in default.privileges if (privilege,) not in held]

    def grant_default_privileges(self, default: DefaultPrivilege) -> None:
        self.execute(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {self.quote(default.owner)} IN SCHEMA {self.quote(default.schema)} "
            f"GRANT {', '.join(default.privileges)} ON TABLES TO {self.quote(default.grantee)}"
        )

    def row_security_enabled(self, schema: str, table: str) -> bool:
        found = self.fetch_all(
            "SELECT c.relrowsecurity FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relname = ?",
            [schema, table],
        )
        return bool(found) and bool(found[0][0])

    def enable_row_security(self, schema: str, table: str) -> None:
        self.execute(f"ALTER TABLE {self.qualified(schema, table)} ENABLE ROW LEVEL SECURITY")

    def row_policy_names(self, schema: str, table: str) -> list[str]:
        found = self.fetch_all(
            "SELECT policyname FROM pg_policies WHERE schemaname = ? AND tablename = ? ORDER BY 1", [schema, table]
        )
        return [str(name) for (name,) in found]

    def drop_row_policy(self, schema: str, table: str, name: str) -> None:
        self.execute(f"DROP POLICY {self.quote(name)} ON {self.qualified(schema, table)}")

    def create_row_policy(self, policy: RowPolicy) -> None:
        """Permissive, for one role and command: rows outside `policy`'s condition are neither seen nor written."""
        condition = "true"
        if policy.column:
            literals = ", ".join("'" + value.replace("'", "''") + "'" for value in policy.values)
            condition = f"{self.quote(policy.column)} {policy.operator} ({literals})"
        clause = "WITH CHECK" if policy.command == "INSERT" else "USING"
        self.execute(
            f"CREATE POLICY {self.quote(policy.name)} ON {self.qualified(policy.schema, policy.table)} "
            f"FOR {policy.command} TO {self.quote(policy.role)} {clause} ({condition})"
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
