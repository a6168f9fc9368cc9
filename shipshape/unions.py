"""The unions in the declaration models as pydantic sees them: the tags it adds to error locations, and the
member a nested mapping is checked against.

Both are read from the models' annotations, never listed, so a new source kind (or any new union in a
declaration model) needs no edit here or in `catalog.py`, whose error messages use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo


def union_tags(model: type[BaseModel]) -> frozenset[str]:
    """The labels pydantic adds to error locations inside the unions `model` reaches.

    A discriminated union adds the tag of the member it chose (`source.sql.table`), a plain `X | Y` the name
    of each member it tried (`source.url.str`).
    """
    tags: set[str] = set()
    _collect_model_tags(model, tags, set())
    return frozenset(tags)


def member_for(field: FieldInfo, node: object) -> type[BaseModel] | None:
    """The model a field's mapping `node` is checked against: for a discriminated union, the member its tag
    names (else the first); for `X | Model`, the model; None when the field holds no model."""
    members = list(_models_in(field.annotation, _discriminator(field)))
    for model, tag_name in members:
        if tag_name is None or (isinstance(node, dict) and node.get(tag_name) in _tag_values(model, tag_name)):
            return model
    return members[0][0] if members else None


def _collect_model_tags(model: type[BaseModel], tags: set[str], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        _collect_tags(field.annotation, _discriminator(field), tags, seen)


def _collect_tags(annotation: Any, discriminator: str | None, tags: set[str], seen: set[type[BaseModel]]) -> None:
    """Tags of the unions in `annotation` and in every model it reaches (`discriminator`: of this union, if any)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        _collect_tags(args[0], _discriminator(*args[1:]) or discriminator, tags, seen)
    elif origin in (Union, UnionType):
        members = [member for member in args if member is not NoneType]
        if len(members) > 1:  # `X | None` alone is no union to pydantic: no tag
            for member in members:
                tags.update(_member_tags(member, discriminator))
        for member in members:
            _collect_tags(member, None, tags, seen)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        _collect_model_tags(annotation, tags, seen)
    else:
        for arg in args:  # list[...], dict[..., ...], tuple[...]
            _collect_tags(arg, None, tags, seen)


def _member_tags(member: Any, discriminator: str | None) -> list[str]:
    """A discriminated member's tag values (its Literal discriminator field); otherwise its type's name."""
    if get_origin(member) is Annotated:
        member = get_args(member)[0]
    if discriminator is not None and isinstance(member, type) and issubclass(member, BaseModel):
        return _tag_values(member, discriminator)
    return [getattr(member, "__name__", str(member))]


def _models_in(annotation: Any, discriminator: str | None) -> Iterator[tuple[type[BaseModel], str | None]]:
    """The models directly in `annotation` (through `Annotated`, unions and `None`), with their union's tag field."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        yield from _models_in(args[0], _discriminator(*args[1:]) or discriminator)
    elif origin in (Union, UnionType):
        for member in args:
            yield from _models_in(member, discriminator)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, discriminator


def _discriminator(*metadata: object) -> str | None:
    """The discriminator field named in a field's info (or an `Annotated`'s metadata), if any."""
    for meta in metadata:
        if isinstance(meta, FieldInfo) and isinstance(meta.discriminator, str):
            return meta.discriminator
    return None


def _tag_values(model: type[BaseModel], tag_name: str) -> list[str]:
    annotation = model.model_fields[tag_name].annotation
    return [str(value) for value in get_args(annotation)] if get_origin(annotation) is Literal else []
