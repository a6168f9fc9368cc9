"""PostgreSQL: DDL on published tables through the owner role's SECURITY DEFINER functions, and their installation.

The published tables belong to a NOLOGIN owner role; the publisher holds only DML on them, so it cannot drop,
alter, truncate or grant them. The three things a publish must still do to a table — create it on the first publish,
add the transform output's new columns, widen a column's type — are functions owned by the owner role
(`names.PUBLISHED_TABLE_FUNCTIONS`, in `PLATFORM_SCHEMA`), which only the publisher may execute. Each does exactly its
one thing and trusts none of its arguments, since the publisher (or code running as it) may call it directly:
- the destination schema is not reserved, and an existing destination is a plain table the owner role owns;
- the source is a plain table in `audit` owned by the environment's loader, without row-level security, triggers,
  rules or column types outside `pg_catalog` (its catalog rows are read; its rows never are);
- identifiers go through `format('%I')`, and types are `format_type` of `pg_catalog` types only;
- `search_path` is pinned to `pg_catalog, pg_temp`, so no object of another role is found in its place.
The functions rely on the owner role's default privileges (`make apply`) to grant a new table to the consumer,
loader and publisher. Where they are not installed (a database `make apply` never gave roles, a single-role URL),
the same adapter methods run the DDL as the connection (`Warehouse`'s versions).
"""

from __future__ import annotations

from shipshape.names import (
    AUDIT_SCHEMA,
    PLATFORM_SCHEMA,
    PUBLISHED_TABLE_FUNCTIONS,
    RESERVED_SCHEMA_PREFIXES,
    RESERVED_SCHEMAS,
)
from shipshape.warehouses.base import Warehouse
from shipshape.warehouses.roles import OwnerFunctions

_SEARCH_PATH = "search_path=pg_catalog, pg_temp"
_REFUSED = "USING ERRCODE = 'insufficient_privilege'"

_CREATE, _ADD, _WIDEN = PUBLISHED_TABLE_FUNCTIONS
_ARGUMENTS = {
    _CREATE: "target_schema text, target_table text, source_schema text, source_table text",
    _ADD: "target_schema text, target_table text, source_schema text, source_table text",
    _WIDEN: "target_schema text, target_table text, column_name text, source_schema text, source_table text",
}


def _signature(name: str) -> str:
    """`platform.<name>(text, …)`: what `to_regprocedure` looks the function up by."""
    return f"{PLATFORM_SCHEMA}.{name}({', '.join('text' for _ in _ARGUMENTS[name].split(','))})"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _checks(loader: str, *, existing_target: bool) -> str:
    """The argument checks every function starts with: sets `source` (and `target`) or raises."""
    reserved = " OR ".join(
        [
            f"target_schema = ANY (ARRAY[{', '.join(_literal(name) for name in sorted(RESERVED_SCHEMAS))}])",
            *(f"starts_with(target_schema, {_literal(prefix)})" for prefix in RESERVED_SCHEMA_PREFIXES),
        ]
    )
    target = f"""
    SELECT c.oid INTO target FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = target_schema AND c.relname = target_table AND c.relkind = 'r' AND c.relowner = (
        SELECT oid FROM pg_roles WHERE rolname = current_user);
    IF target IS NULL THEN
        RAISE EXCEPTION 'shipshape: %.% is not a published table (a plain table owned by %)',
            target_schema, target_table, current_user {_REFUSED};
    END IF;"""
    return f"""
    IF num_nulls(VARIADIC ARRAY[target_schema, target_table, source_schema, source_table]) > 0 THEN
        RAISE EXCEPTION 'shipshape: no argument may be NULL' {_REFUSED};
    END IF;
    IF {reserved} THEN
        RAISE EXCEPTION 'shipshape: % is a reserved schema, never a published one', target_schema {_REFUSED};
    END IF;
    SELECT c.oid INTO source FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = {_literal(AUDIT_SCHEMA)} AND source_schema = {_literal(AUDIT_SCHEMA)}
        AND c.relname = source_table AND c.relkind = 'r' AND NOT c.relrowsecurity
        AND pg_get_userbyid(c.relowner) = {_literal(loader)}
        AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = c.oid)
        AND NOT EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class = c.oid)
        AND NOT EXISTS (SELECT 1 FROM pg_attribute AS a JOIN pg_type AS t ON t.oid = a.atttypid
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            AND t.typnamespace <> 'pg_catalog'::regnamespace);
    IF source IS NULL THEN
        RAISE EXCEPTION 'shipshape: %.% is not a plain table of % in % (no row security, triggers, rules or types '
            'outside pg_catalog)', source_schema, source_table, {_literal(loader)}, {_literal(AUDIT_SCHEMA)} {_REFUSED};
    END IF;{target if existing_target else ""}"""


def _bodies(loader: str) -> dict[str, str]:
    """Each function's PL/pgSQL body; the loader's name is part of it, so apply re-installs them if it changes."""
    return {
        _CREATE: f"""
DECLARE
    source oid;
    columns text;
BEGIN{_checks(loader, existing_target=False)}
    IF EXISTS (SELECT 1 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
               WHERE n.nspname = target_schema AND c.relname = target_table) THEN
        RAISE EXCEPTION 'shipshape: %.% exists already', target_schema, target_table {_REFUSED};
    END IF;
    SELECT string_agg(format('%I %s', attname, format_type(atttypid, atttypmod)), ', ' ORDER BY attnum)
    INTO columns FROM pg_attribute WHERE attrelid = source AND attnum > 0 AND NOT attisdropped;
    EXECUTE format('CREATE TABLE %I.%I (%s)', target_schema, target_table, columns);
END""",
        _ADD: f"""
DECLARE
    source oid;
    target oid;
    added record;
BEGIN{_checks(loader, existing_target=True)}
    FOR added IN SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute AS a
        WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped AND NOT EXISTS (
            SELECT 1 FROM pg_attribute AS b WHERE b.attrelid = target AND b.attname = a.attname AND NOT b.attisdropped)
        ORDER BY a.attnum
    LOOP
        EXECUTE format('ALTER TABLE %I.%I ADD COLUMN %I %s', target_schema, target_table, added.attname, added.type);
    END LOOP;
END""",
        _WIDEN: f"""
DECLARE
    source oid;
    target oid;
    old_type text;
    old_mod integer;
    new_type text;
    new_mod integer;
BEGIN{_checks(loader, existing_target=True)}
    SELECT atttypid::regtype::text, atttypmod INTO old_type, old_mod FROM pg_attribute
    WHERE attrelid = target AND attname = column_name AND attnum > 0 AND NOT attisdropped;
    SELECT atttypid::regtype::text, atttypmod INTO new_type, new_mod FROM pg_attribute
    WHERE attrelid = source AND attname = column_name AND attnum > 0 AND NOT attisdropped;
    -- The same rule as shipshape.schema_evolution.widens: numeric typmod is ((precision << 16) | scale) + 4,
    -- varchar's is length + 4, -1 is unconstrained.
    IF old_type IS NULL OR new_type IS NULL OR (old_type, old_mod) = (new_type, new_mod) OR NOT (
        (old_type, new_type) IN (('smallint', 'integer'), ('smallint', 'bigint'), ('integer', 'bigint'),
                                 ('real', 'double precision'))
        OR (old_type = 'numeric' AND new_type = 'numeric' AND old_mod <> -1 AND (new_mod = -1 OR (
            (new_mod - 4) & 65535 >= (old_mod - 4) & 65535
            AND ((new_mod - 4) >> 16) - ((new_mod - 4) & 65535) >= ((old_mod - 4) >> 16) - ((old_mod - 4) & 65535))))
        OR (old_type IN ('smallint', 'integer', 'bigint') AND (new_type = 'double precision' OR (
            new_type = 'numeric' AND (new_mod = -1 OR ((new_mod - 4) >> 16) - ((new_mod - 4) & 65535)
                >= CASE old_type WHEN 'smallint' THEN 5 WHEN 'integer' THEN 10 ELSE 19 END))))
        OR (old_type = 'character varying' AND old_mod <> -1
            AND (new_type = 'text' OR (new_type = 'character varying' AND (new_mod = -1 OR new_mod > old_mod))))
    ) THEN
        RAISE EXCEPTION 'shipshape: %.%.% % does not widen to %', target_schema, target_table, column_name,
            format_type(old_type::regtype, old_mod), format_type(new_type::regtype, new_mod) {_REFUSED};
    END IF;
    EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN %I TYPE %s', target_schema, target_table, column_name,
                   format_type(new_type::regtype, new_mod));
END""",
    }


class PostgresPublishedTables(Warehouse):
    """The published-table DDL of `PostgresWarehouse`: through the owner's functions once they are installed."""

    def create_published_table(self, schema: str, table: str, source_schema: str, source_table: str) -> None:
        if not self._calls(_CREATE, schema, table, source_schema, source_table):
            super().create_published_table(schema, table, source_schema, source_table)

    def add_published_columns(self, schema: str, table: str, source_schema: str, source_table: str) -> None:
        if not self._calls(_ADD, schema, table, source_schema, source_table):
            super().add_published_columns(schema, table, source_schema, source_table)

    def widen_published_column(
        self, schema: str, table: str, column: str, source_schema: str, source_table: str
    ) -> None:
        if not self._calls(_WIDEN, schema, table, column, source_schema, source_table):
            super().widen_published_column(schema, table, column, source_schema, source_table)

    def _ddl_types(self, schema: str, table: str) -> dict[str, str]:
        """`format_type`: information_schema drops the sizes (`numeric`, `character varying`)."""
        rows = self.fetch_all(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a "
            "WHERE a.attrelid = to_regclass(format('%I.%I', ?::text, ?::text)) AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY a.attnum",
            [schema, table],
        )
        return {str(name): str(ddl_type) for name, ddl_type in rows}

    def _calls(self, function: str, *arguments: str) -> bool:
        """Run the owner's `function` if `make apply` installed it (True), else nothing (False)."""
        if self.fetch_all("SELECT to_regprocedure(?) IS NULL", [_signature(function)])[0][0]:
            return False
        placeholders = ", ".join("?" for _ in arguments)
        self.fetch_all(f"SELECT {self.qualified(PLATFORM_SCHEMA, function)}({placeholders})", list(arguments))
        return True

    # --- installed by `make apply` (`infra.warehouse`) ------------------------------------------------------------

    def owner_functions_to_install(self, functions: OwnerFunctions) -> dict[str, str]:
        """Each function that is missing ('create') or differs in body, owner, settings or who may run it
        ('update'): a hand-made `GRANT EXECUTE` to the loader, say, is an update that revokes it."""
        bodies = _bodies(functions.loader)
        rows = self.fetch_all(
            "SELECT p.proname, p.prosrc, pg_get_userbyid(p.proowner), p.prosecdef, p.proconfig, "
            "ARRAY(SELECT CASE acl.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(acl.grantee) END "
            "      FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS acl "
            "      WHERE acl.grantee <> p.proowner ORDER BY 1) "
            "FROM pg_proc AS p WHERE p.pronamespace = to_regnamespace(?) AND p.proname = ANY(?)",
            [PLATFORM_SCHEMA, list(bodies)],
        )
        installed = {row[0]: tuple(row[1:]) for row in rows}
        wanted = {
            name: (body, functions.owner, True, [_SEARCH_PATH], [functions.publisher]) for name, body in bodies.items()
        }
        return {
            name: "create" if name not in installed else "update"
            for name in bodies
            if installed.get(name) != wanted[name]
        }

    def install_owner_function(self, name: str, functions: OwnerFunctions) -> None:
        """(Re)create one function as the owner's, runnable by the publisher alone. Dropped first: a function of the
        same signature made by hand may name its parameters otherwise, which CREATE OR REPLACE cannot change."""
        signature = f"{self.qualified(PLATFORM_SCHEMA, name)}({_ARGUMENTS[name]})"
        self.execute(f"DROP FUNCTION IF EXISTS {_signature(name)}")
        self.execute(
            f"CREATE FUNCTION {signature} RETURNS void LANGUAGE plpgsql SECURITY DEFINER "
            f"SET search_path = pg_catalog, pg_temp AS $shipshape${_bodies(functions.loader)[name]}$shipshape$"
        )
        self.execute(f"ALTER FUNCTION {signature} OWNER TO {self.quote(functions.owner)}")
        self.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")  # a new function is everyone's to run
        self.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {self.quote(functions.publisher)}")
