"""The lineage of an environment: where each published table's data comes from and who reads it, from the
declarations and the transform SQL alone (no warehouse, no run history).

WHY: the report draws it so an owner sees what a change breaks before making it. Per pipeline the data walks
source → raw (the audit area's load) → each transform step → its published table; a table then feeds every
pipeline whose source or transform SQL reads it. What a step reads comes from its placeholders (`{{ raw }}`,
`{{ <earlier step> }}`) and from the tables its SQL names, parsed with sqlglot: a CTE's name is not a table, and a
table no pipeline publishes is drawn as external. A step reading `{{ this }}` (its own published table) is not
drawn: it would be a loop. Tables are matched by `schema.table` name; a published table never lives in the default
schema (`public` is reserved), so an unqualified name is always someone else's table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from shipshape.catalog import PLACEHOLDER, DeclaredPipeline
from shipshape.names import versioned_table
from shipshape.user_sql import DIALECTS

NodeKind = Literal["source", "raw", "step", "table", "external"]
EdgeKind = Literal["loads", "feeds", "publishes", "reads", "next_version"]


@dataclass(frozen=True)
class Node:
    id: str
    kind: NodeKind
    label: str
    pipeline: str | None  # the pipeline it belongs to; None for an external table


@dataclass(frozen=True)
class Edge:
    source: str  # node ids
    target: str
    kind: EdgeKind


@dataclass(frozen=True)
class Lineage:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def readers(self, table: str) -> list[str]:
        """The pipelines reading `schema.table` (their source or a transform step), sorted."""
        node = table_node_id(table)
        reads = [edge for edge in self.edges if edge.source == node and edge.kind == "reads"]
        reading = {self._node(edge.target).pipeline for edge in reads}
        return sorted(pipeline for pipeline in reading if pipeline is not None)

    def _node(self, node_id: str) -> Node:
        return next(node for node in self.nodes if node.id == node_id)


def table_node_id(table: str) -> str:
    return f"table:{table.lower()}"


def lineage(declared: Sequence[DeclaredPipeline], today: date) -> Lineage:
    """Nodes and edges of every declared pipeline; `today` says which earlier table versions are still kept."""
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    for pipeline in declared:
        _own_path(pipeline, today, nodes, edges)
    for pipeline in declared:
        _reads(pipeline, nodes, edges)
    return Lineage(tuple(nodes.values()), tuple(dict.fromkeys(edges)))


def _own_path(pipeline: DeclaredPipeline, today: date, nodes: dict[str, Node], edges: list[Edge]) -> None:
    """source → raw → steps (by the placeholders each reads) → the current table; earlier versions before it."""
    name, spec = pipeline.name, pipeline.spec
    source, raw = f"source:{name}", f"raw:{name}"
    nodes[source] = Node(source, "source", f"{name}: {spec.source.describe()}", name)
    nodes[raw] = Node(raw, "raw", f"{name}: raw (audit)", name)
    edges.append(Edge(source, raw, "loads"))
    produced = {"raw": raw}
    last = raw
    for path in pipeline.transform_paths:
        step = _step_id(name, path)
        nodes[step] = Node(step, "step", f"{name}: {path.name}", name)
        for placeholder in PLACEHOLDER.findall(path.read_text()):
            if placeholder in produced:
                edges.append(Edge(produced[placeholder], step, "feeds"))
        produced[path.stem] = last = step
    destination = spec.destination
    previous: str | None = None
    retired = set(destination.retired_tables(today))
    for version in range(1, destination.version + 1):
        table = versioned_table(destination.table, version)
        node = table_node_id(f"{destination.schema_name}.{table}")
        state = "current" if version == destination.version else "retired" if table in retired else "kept"
        nodes[node] = Node(node, "table", f"{destination.schema_name}.{table} ({state})", name)
        if previous is not None:
            edges.append(Edge(previous, node, "next_version"))
        previous = node
    assert previous is not None  # version ≥ 1
    edges.append(Edge(last, previous, "publishes"))


def _reads(pipeline: DeclaredPipeline, nodes: dict[str, Node], edges: list[Edge]) -> None:
    """Edges from each table the pipeline's source or SQL names to the node that reads it: a source only reads a
    published table (its other tables are in its own database), a step any table of the warehouse."""
    name = pipeline.name
    source = f"source:{name}"
    for table in pipeline.spec.source.read_tables():  # its own database's tables are the source node itself
        if table_node_id(table) in nodes:
            edges.append(Edge(table_node_id(table), source, "reads"))
    own = {"raw", "this", *(path.stem for path in pipeline.transform_paths)}
    for path in pipeline.transform_paths:
        for table in sorted(tables_read(path.read_text(), own)):
            node = table_node_id(table)
            nodes.setdefault(node, Node(node, "external", f"{table} (no pipeline publishes it)", None))
            edges.append(Edge(node, _step_id(name, path), "reads"))


def tables_read(sql: str, placeholders: Iterable[str] = ()) -> set[str]:
    """The tables a query names (`schema.table`, lower case; a bare name as written), without its CTEs and the
    `placeholders` it fills in. SQL that parses in no engine's dialect reads nothing here (validate reports it)."""
    text = PLACEHOLDER.sub(lambda match: match.group(1), sql.strip().rstrip(";"))
    skipped = {placeholder.lower() for placeholder in placeholders}
    for dialect in DIALECTS:
        try:
            tree = sqlglot.parse_one(text, read=dialect)
        except SqlglotError:
            continue
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        found = set()
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):  # a table function (read_csv(...)): not a table
                continue
            bare = table.name.lower()
            if table.db:
                found.add(f"{table.db.lower()}.{bare}")
            elif bare not in ctes | skipped:
                found.add(bare)
        return found
    return set()


def _step_id(pipeline: str, path: Path) -> str:
    return f"step:{pipeline}:{path.stem}"
