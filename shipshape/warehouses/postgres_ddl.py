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

from datetime import date, datetime
from typing import Any

from shipshape.errors import TransientError
from shipshape.names import (
    AUDIT_SCHEMA,
    HISTORY_SCHEMA,
    PARTITION_BOUND,
    PLATFORM_SCHEMA,
    PUBLISHED_TABLE_FUNCTIONS,
    RESERVED_SCHEMA_PREFIXES,
    RESERVED_SCHEMAS,
)
from shipshape.warehouses.base import Warehouse
from shipshape.warehouses.exchange import PartitionExchange
from shipshape.warehouses.roles import OwnerFunctions

_SEARCH_PATH = "search_path=pg_catalog, pg_temp"
_REFUSED = "USING ERRCODE = 'insufficient_privilege'"

_CREATE, _ADD, _WIDEN, _CREATE_PARTITIONED, _EXCHANGE, _DROP_KEPT = PUBLISHED_TABLE_FUNCTIONS
_SOURCE = "source_schema text, source_table text"
_ARGUMENTS = {
    _CREATE: f"target_schema text, target_table text, {_SOURCE}",
    _ADD: f"target_schema text, target_table text, {_SOURCE}",
    _WIDEN: f"target_schema text, target_table text, column_name text, {_SOURCE}",
    _CREATE_PARTITIONED: f"target_schema text, target_table text, {_SOURCE}, partition_column text",
    _EXCHANGE: "target_schema text, target_table text, bound_from text, bound_to text, partition_table text, "
    f"{_SOURCE}, kept_table text",
    _DROP_KEPT: "kept_table text",
}
_LOCK_NOT_AVAILABLE = "55P03"
"""SQLSTATE of a statement that waited `lock_timeout` for a lock."""
_PLAIN_OR_PARTITIONED = "ARRAY['r', 'p']::\"char\"[]"
_PARTITIONED = "ARRAY['p']::\"char\"[]"
_RETURNS = {_EXCHANGE: "boolean"}
"""What a function returns when not `void`: `exchange_partition` whether it replaced (moved to history) a partition."""


def _signature(name: str) -> str:
    """`platform.<name>(text, …)`: what `to_regprocedure` looks the function up by."""
    return f"{PLATFORM_SCHEMA}.{name}({', '.join('text' for _ in _ARGUMENTS[name].split(','))})"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _no_nulls(name: str) -> str:
    """Refuse a NULL in any of the function's arguments."""
    arguments = ", ".join(argument.split()[0] for argument in _ARGUMENTS[name].split(","))
    return f"""
    IF num_nulls(VARIADIC ARRAY[{arguments}]) > 0 THEN
        RAISE EXCEPTION 'shipshape: no argument may be NULL' {_REFUSED};
    END IF;"""


def _not_reserved() -> str:
    reserved = " OR ".join(
        [
            f"target_schema = ANY (ARRAY[{', '.join(_literal(name) for name in sorted(RESERVED_SCHEMAS))}])",
            *(f"starts_with(target_schema, {_literal(prefix)})" for prefix in RESERVED_SCHEMA_PREFIXES),
        ]
    )
    return f"""
    IF {reserved} THEN
        RAISE EXCEPTION 'shipshape: % is a reserved schema, never a published one', target_schema {_REFUSED};
    END IF;"""


def _loader_source(loader: str, *, attachable: bool = False) -> str:
    """Sets `source` to the loader's plain audit table or raises. `attachable`: also nothing that would run code or
    constrain rows once it is a partition — no index, default or identity, inheritance, type, statistics object, no
    constraint but CHECKs of `pg_catalog` functions and operators (the transform's bound, `PARTITION_BOUND`)."""
    attach_problems = "; no index, default, inheritance, statistics or constraint but a CHECK" if attachable else ""
    attach_checks = """
        AND NOT c.relispartition AND c.reloftype = 0
        AND c.relam = (SELECT oid FROM pg_am WHERE amname = 'heap')
        AND NOT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = c.oid)
        AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k WHERE k.conrelid = c.oid AND (k.contype <> 'c' OR EXISTS (
            SELECT 1 FROM pg_depend AS d WHERE d.classid = 'pg_constraint'::regclass AND d.objid = k.oid
            AND d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass, 'pg_type'::regclass)
            AND d.refobjid NOT IN (SELECT oid FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace
                UNION ALL SELECT oid FROM pg_operator WHERE oprnamespace = 'pg_catalog'::regnamespace
                UNION ALL SELECT oid FROM pg_type WHERE typnamespace = 'pg_catalog'::regnamespace))))
        AND NOT EXISTS (SELECT 1 FROM pg_attrdef WHERE adrelid = c.oid)
        AND NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND attidentity <> '')
        AND NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = c.oid OR inhparent = c.oid)
        AND NOT EXISTS (SELECT 1 FROM pg_statistic_ext WHERE stxrelid = c.oid)
        AND NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = c.oid)"""
    return f"""
    SELECT c.oid INTO source FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = {_literal(AUDIT_SCHEMA)} AND source_schema = {_literal(AUDIT_SCHEMA)}
        AND c.relname = source_table AND c.relkind = 'r' AND NOT c.relrowsecurity
        AND pg_get_userbyid(c.relowner) = {_literal(loader)}
        AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = c.oid)
        AND NOT EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class = c.oid)
        AND NOT EXISTS (SELECT 1 FROM pg_attribute AS a JOIN pg_type AS t ON t.oid = a.atttypid
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            AND t.typnamespace <> 'pg_catalog'::regnamespace){attach_checks if attachable else ""};
    IF source IS NULL THEN
        RAISE EXCEPTION 'shipshape: %.% is not a plain table of % in % (no row security, triggers, rules or types '
            'outside pg_catalog{attach_problems})',
            source_schema, source_table, {_literal(loader)}, {_literal(AUDIT_SCHEMA)} {_REFUSED};
    END IF;"""


def _owned_target(kinds: str) -> str:
    """Sets `target` to the published table (of a relkind in `kinds`) the owner role owns, or raises."""
    return f"""
    SELECT c.oid INTO target FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = target_schema AND c.relname = target_table AND c.relkind = ANY ({kinds}) AND c.relowner = (
        SELECT oid FROM pg_roles WHERE rolname = current_user);
    IF target IS NULL THEN
        RAISE EXCEPTION 'shipshape: %.% is not a published table (a table owned by %)',
            target_schema, target_table, current_user {_REFUSED};
    END IF;"""


def _checks(name: str, loader: str, *, existing_target: bool) -> str:
    """The argument checks every function on a published table starts with: sets `source` (and `target`) or raises."""
    target = _owned_target(_PLAIN_OR_PARTITIONED) if existing_target else ""
    return _no_nulls(name) + _not_reserved() + _loader_source(loader) + target


def _new_table() -> str:
    """Refuses an existing target, and sets `columns` to the source's column list as CREATE TABLE spells it."""
    return f"""
    IF EXISTS (SELECT 1 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
               WHERE n.nspname = target_schema AND c.relname = target_table) THEN
        RAISE EXCEPTION 'shipshape: %.% exists already', target_schema, target_table {_REFUSED};
    END IF;
    SELECT string_agg(format('%I %s', attname, format_type(atttypid, atttypmod)), ', ' ORDER BY attnum)
    INTO columns FROM pg_attribute WHERE attrelid = source AND attnum > 0 AND NOT attisdropped;"""


def _strip_grants(table: str) -> str:
    """Revoke every privilege anyone but the owner holds on the table with oid `table` (incl. PUBLIC's)."""
    return f"""
    FOR grantee IN SELECT DISTINCT acl.grantee FROM pg_class AS c CROSS JOIN LATERAL aclexplode(c.relacl) AS acl
        WHERE c.oid = {table} AND acl.grantee <> c.relowner
    LOOP
        EXECUTE format('REVOKE ALL ON %s FROM %s', {table}::regclass,
                       CASE grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grantee)) END);
    END LOOP;"""


def _bodies(functions: OwnerFunctions) -> dict[str, str]:
    """Each function's PL/pgSQL body; the loader's and publisher's names are part of it, so apply re-installs them if
    they change."""
    loader = functions.loader
    bodies = {
        _CREATE: f"""
DECLARE
    source oid;
    columns text;
BEGIN{_checks(_CREATE, loader, existing_target=False)}{_new_table()}
    EXECUTE format('CREATE TABLE %I.%I (%s)', target_schema, target_table, columns);
END""",
        _CREATE_PARTITIONED: f"""
DECLARE
    source oid;
    columns text;
BEGIN{_checks(_CREATE_PARTITIONED, loader, existing_target=False)}{_new_table()}
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = source AND attname = partition_column
                   AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'shipshape: %.% has no column %', source_schema, source_table, partition_column {_REFUSED};
    END IF;
    EXECUTE format('CREATE TABLE %I.%I (%s) PARTITION BY RANGE (%I)', target_schema, target_table, columns,
                   partition_column);
END""",
        _EXCHANGE: _exchange_body(loader, functions.publisher),
        _DROP_KEPT: f"""
DECLARE
    kept oid;
BEGIN{_no_nulls(_DROP_KEPT)}
    SELECT c.oid INTO kept FROM pg_class AS c WHERE c.relnamespace = {_literal(HISTORY_SCHEMA)}::regnamespace
        AND c.relname = kept_table AND c.relkind = 'r' AND NOT c.relispartition
        AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user);
    IF kept IS NULL THEN
        RAISE EXCEPTION 'shipshape: %.% is not a history table of %', {_literal(HISTORY_SCHEMA)}, kept_table,
            current_user {_REFUSED};
    END IF;
    EXECUTE format('DROP TABLE %s', kept::regclass);
END""",
        _ADD: f"""
DECLARE
    source oid;
    target oid;
    added record;
BEGIN{_checks(_ADD, loader, existing_target=True)}
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
BEGIN{_checks(_WIDEN, loader, existing_target=True)}
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
    return {name: bodies[name] for name in PUBLISHED_TABLE_FUNCTIONS}


def _exchange_body(loader: str, publisher: str) -> str:
    """Detach the current partition into history, shape the incoming table like the published one, attach it.

    The incoming table is the loader's audited table (a publish) or a kept history table of the owner (a
    rollback). The owner role takes the audited table over (it is a member of the loader role for exactly this:
    ALTER OWNER needs the old owner's rights) and strips every grant the loader gave on it, before anything else
    touches it. The scan that proves its rows lie in the bounds is the CHECK constraint's, made before the DETACH,
    so readers of the published table are not kept waiting for it: ATTACH then trusts the constraint. A kept table
    is the owner's, with every grant stripped but the publisher's SELECT (as for the tables it keeps by copy).
    """
    audit, history = _literal(AUDIT_SCHEMA), _literal(HISTORY_SCHEMA)
    return f"""
DECLARE
    source oid;
    target oid;
    current_partition oid;
    key_column text;
    replaced boolean := false;
    bound_proved boolean;
    shaped record;
    checked text;
    grantee oid;
    granted record;
BEGIN{_no_nulls(_EXCHANGE)}{_not_reserved()}{_owned_target(_PARTITIONED)}
    IF NOT starts_with(kept_table, 'h_') THEN
        RAISE EXCEPTION 'shipshape: % is not a history table name (h_<ledger entry>)', kept_table {_REFUSED};
    END IF;
    IF source_schema = {audit} THEN{_loader_source(loader, attachable=True)}
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', source::regclass);
        EXECUTE format('ALTER TABLE %s OWNER TO %I', source::regclass, current_user);
    ELSIF source_schema = {history} THEN
        SELECT c.oid INTO source FROM pg_class AS c WHERE c.relnamespace = {history}::regnamespace
            AND c.relname = source_table AND starts_with(source_table, 'h_') AND c.relkind = 'r'
            AND NOT c.relispartition AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user);
        IF source IS NULL THEN
            RAISE EXCEPTION 'shipshape: %.% is not a history table of %', source_schema, source_table,
                current_user {_REFUSED};
        END IF;
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', source::regclass);
    ELSE
        RAISE EXCEPTION 'shipshape: % holds neither audited nor kept tables', source_schema {_REFUSED};
    END IF;{_strip_grants("source")}
    IF EXISTS (SELECT 1 FROM pg_attribute AS s WHERE s.attrelid = source AND s.attnum > 0 AND NOT s.attisdropped
               AND NOT EXISTS (SELECT 1 FROM pg_attribute AS t WHERE t.attrelid = target AND t.attname = s.attname
                               AND NOT t.attisdropped)) THEN
        RAISE EXCEPTION 'shipshape: %.% has columns %.% lacks; add them to the published table first',
            source_schema, source_table, target_schema, target_table {_REFUSED};
    END IF;
    -- The transform's CHECK of the bounds (made as the loader, outside the publish) spares ATTACH its scan.
    bound_proved := EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = source
                            AND conname = {_literal(PARTITION_BOUND)} AND contype = 'c' AND convalidated);
    -- Partitions hold exactly the parent's columns and types: a column added since comes in NULL, a widened
    -- type is applied (both as a publish by INSERT would do it). A rewrite re-checks CHECKs: they go first.
    IF EXISTS (SELECT 1 FROM pg_attribute AS t LEFT JOIN pg_attribute AS s
                   ON s.attrelid = source AND s.attname = t.attname AND s.attnum > 0 AND NOT s.attisdropped
               WHERE t.attrelid = target AND t.attnum > 0 AND NOT t.attisdropped
                   AND (s.attname IS NULL OR (s.atttypid, s.atttypmod) <> (t.atttypid, t.atttypmod))) THEN
        FOR checked IN SELECT conname FROM pg_constraint WHERE conrelid = source LOOP
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', source::regclass, checked);
        END LOOP;
        bound_proved := false;
    END IF;
    FOR shaped IN SELECT t.attname, format_type(t.atttypid, t.atttypmod) AS type, s.attname IS NULL AS missing
        FROM pg_attribute AS t LEFT JOIN pg_attribute AS s
            ON s.attrelid = source AND s.attname = t.attname AND s.attnum > 0 AND NOT s.attisdropped
        WHERE t.attrelid = target AND t.attnum > 0 AND NOT t.attisdropped
            AND (s.attname IS NULL OR (s.atttypid, s.atttypmod) <> (t.atttypid, t.atttypmod))
        ORDER BY t.attnum
    LOOP
        IF shaped.missing THEN
            EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', source::regclass, shaped.attname, shaped.type);
        ELSE
            EXECUTE format('ALTER TABLE %s ALTER COLUMN %I TYPE %s USING %I::%s', source::regclass, shaped.attname,
                           shaped.type, shaped.attname, shaped.type);
        END IF;
    END LOOP;
    SELECT a.attname INTO key_column FROM pg_partitioned_table AS p
        JOIN pg_attribute AS a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] WHERE p.partrelid = target;
    IF NOT bound_proved THEN
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%I IS NOT NULL AND %I >= %L AND %I < %L)',
                       source::regclass, {_literal(PARTITION_BOUND)}, key_column, key_column, bound_from, key_column,
                       bound_to);
    END IF;
    -- An audited table is UNLOGGED (scratch) unless the transform made it for an exchange: a partition must not be
    -- emptied by crash recovery.
    IF (SELECT relpersistence FROM pg_class WHERE oid = source) <> 'p' THEN
        EXECUTE format('ALTER TABLE %s SET LOGGED', source::regclass);
    END IF;
    -- From here the published table is locked ACCESS EXCLUSIVE until COMMIT: only catalog changes follow.
    SELECT c.oid INTO current_partition FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = target AND c.relname = partition_table;
    IF current_partition IS NULL THEN
        EXECUTE format('CREATE TABLE {HISTORY_SCHEMA}.%I (LIKE %I.%I)', kept_table, target_schema, target_table);
        EXECUTE format('GRANT SELECT ON {HISTORY_SCHEMA}.%I TO %I', kept_table, {_literal(publisher)});
    ELSE
        EXECUTE format('ALTER TABLE %I.%I DETACH PARTITION %s', target_schema, target_table,
                       current_partition::regclass);
        EXECUTE format('ALTER TABLE %s RENAME TO %I', current_partition::regclass, kept_table);
        EXECUTE format('ALTER TABLE %s SET SCHEMA {HISTORY_SCHEMA}', current_partition::regclass);{
        _strip_grants("current_partition")
    }
        EXECUTE format('GRANT SELECT ON %s TO %I', current_partition::regclass, {_literal(publisher)});
        replaced := true;
    END IF;
    EXECUTE format('ALTER TABLE %s RENAME TO %I', source::regclass, partition_table);
    EXECUTE format('ALTER TABLE %s SET SCHEMA %I', source::regclass, target_schema);
    EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %s FOR VALUES FROM (%L) TO (%L)', target_schema,
                   target_table, source::regclass, bound_from, bound_to);
    -- The bound stays: once this partition is kept in history, a rollback attaches it back without a scan.
    FOR checked IN SELECT conname FROM pg_constraint WHERE conrelid = source AND conname <> {_literal(PARTITION_BOUND)}
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', source::regclass, checked);
    END LOOP;
    -- Readers of the partition itself get what they have on the published table, nothing more.
    FOR granted IN SELECT acl.grantee, acl.privilege_type FROM pg_class AS c
        CROSS JOIN LATERAL aclexplode(c.relacl) AS acl WHERE c.oid = target AND acl.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON %s TO %s', granted.privilege_type, source::regclass, CASE granted.grantee
            WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(granted.grantee)) END);
    END LOOP;
    RETURN replaced;
END"""


class PostgresPublishedTables(Warehouse, PartitionExchange):
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

    # --- partition exchange (`shipshape.warehouses.exchange`) ------------------------------------------------------

    def create_partitioned_table(
        self, schema: str, table: str, source_schema: str, source_table: str, column: str
    ) -> None:
        self._run_function(_CREATE_PARTITIONED, schema, table, source_schema, source_table, column)

    def is_partitioned(self, schema: str, table: str) -> bool:
        rows = self.fetch_all(
            "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(format('%I.%I', ?::text, ?::text))",
            [schema, table],
        )
        return bool(rows) and bool(rows[0][0])

    def exchange_partition(
        self,
        schema: str,
        table: str,
        bounds: tuple[date | datetime, date | datetime],
        partition: str,
        source: tuple[str, str],
        kept_as: str,
    ) -> bool:
        """DETACH takes ACCESS EXCLUSIVE on the published table: readers wait until COMMIT (the rest of the publish
        transaction: catalog changes and the ledger rows), and a reader already holding a lock makes this wait at
        most the session's `lock_timeout`, then fail as a `TransientError` the task retries."""
        start, end = bounds
        try:
            replaced = self._run_function(
                _EXCHANGE, schema, table, start.isoformat(), end.isoformat(), partition, *source, kept_as
            )
        except TransientError as error:
            if getattr(error.__cause__, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            raise TransientError(
                f"publishing partition {partition} of {schema}.{table} waited longer than lock_timeout for a lock "
                f"another session holds on it (a long query reading the table, a manual lock); nothing was "
                f"published. Retry, or find the holder in pg_locks ({error})"
            ) from error
        return bool(replaced)

    def bound_audited_table(
        self, schema: str, table: str, column: str, bounds: tuple[date | datetime, date | datetime]
    ) -> None:
        """As the loader, which owns the table: the bounds are ISO dates or timestamps, safe as literals."""
        start, end = (_literal(bound.isoformat()) for bound in bounds)
        key = self.quote(column)
        self.execute(
            f"ALTER TABLE {self.qualified(schema, table)} ADD CONSTRAINT {self.quote(PARTITION_BOUND)} "
            f"CHECK ({key} IS NOT NULL AND {key} >= {start} AND {key} < {end})"
        )

    def drop_history_table(self, table: str) -> None:
        """A kept table this connection made (a publish by copy) is dropped as its owner; one partition exchange
        moved there belongs to the owner role, and its function drops it."""
        owners = self.fetch_all(
            "SELECT relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) FROM pg_class "
            "WHERE oid = to_regclass(format('%I.%I', ?::text, ?::text))",
            [HISTORY_SCHEMA, table],
        )
        if owners and not owners[0][0]:
            self._run_function(_DROP_KEPT, table)
        else:
            self.drop_table(HISTORY_SCHEMA, table)

    def _run_function(self, function: str, *arguments: str) -> Any:
        """The owner's `function` once `make apply` installed it; else the same body as this connection's own, in
        `pg_temp` (a single-role warehouse, whose one role owns everything the function acts on)."""
        if self.fetch_all("SELECT to_regprocedure(?) IS NULL", [_signature(function)])[0][0]:
            me = str(self.fetch_all("SELECT current_user")[0][0])
            self.execute(
                f"CREATE OR REPLACE FUNCTION pg_temp.{function}({_ARGUMENTS[function]}) "
                f"RETURNS {_RETURNS.get(function, 'void')} LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp "
                f"AS $shipshape${_bodies(OwnerFunctions(me, me, me))[function]}$shipshape$"
            )
            called = f"pg_temp.{function}"
        else:
            called = self.qualified(PLATFORM_SCHEMA, function)
        placeholders = ", ".join("?" for _ in arguments)
        return self.fetch_all(f"SELECT {called}({placeholders})", list(arguments))[0][0]

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
        bodies = _bodies(functions)
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
            f"CREATE FUNCTION {signature} RETURNS {_RETURNS.get(name, 'void')} LANGUAGE plpgsql SECURITY DEFINER "
            f"SET search_path = pg_catalog, pg_temp AS $shipshape${_bodies(functions)[name]}$shipshape$"
        )
        self.execute(f"ALTER FUNCTION {signature} OWNER TO {self.quote(functions.owner)}")
        self.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")  # a new function is everyone's to run
        self.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {self.quote(functions.publisher)}")
