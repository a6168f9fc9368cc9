"""The kinds of source a declaration may name (`source.kind`), each registered once, here.

Everything else is derived from these entries: the `source:` union `declaration.Pipeline` validates against,
the reader `open_source` returns, the runbook's source line and the Secret blocks `make apply` provisions.
Adding a kind is a module under `shipshape/sources/` (its model, its reader, its `SourceKind`) and one name in
`SOURCE_KINDS`; code outside the package (a plugin, a test) calls `register_source_kind` instead.
"""

from __future__ import annotations

from typing import Any

from shipshape.sources.files import FILE
from shipshape.sources.http import HTTP
from shipshape.sources.kind import SourceBase, SourceKind
from shipshape.sources.sql import SQL

SOURCE_KINDS: dict[str, SourceKind[Any]] = {kind.tag: kind for kind in (SQL, FILE, HTTP)}


def source_kind(spec: SourceBase) -> SourceKind[Any]:
    """The registry entry of a validated source declaration."""
    return SOURCE_KINDS[spec.kind]


def register_source_kind(kind: SourceKind[Any]) -> None:
    """Make `kind` declarable from now on; a tag that is taken is an error, never a silent replacement."""
    if kind.tag in SOURCE_KINDS:
        raise ValueError(f"source kind {kind.tag!r} is already registered ({SOURCE_KINDS[kind.tag].model.__name__})")
    SOURCE_KINDS[kind.tag] = kind
    _rebuild_declaration_model()


def unregister_source_kind(tag: str) -> None:
    """Withdraw a kind `register_source_kind` added; declarations naming it are invalid again."""
    del SOURCE_KINDS[tag]
    _rebuild_declaration_model()


def _rebuild_declaration_model() -> None:
    # Imported here: `declaration.py` builds its union from this module at import time.
    from shipshape.declaration import accept_registered_sources

    accept_registered_sources()
