"""The file source's path template, filled by explicit substitution rather than `str.format`.

`str.format` evaluates attribute and index lookups inside the braces, so a declaration could write
`{data_dir.__class__.__new__.__globals__[os].environ[PREFECT_API_KEY]}` and read any of the worker's
secrets into an error message. Here a template knows exactly three fields — `{data_dir}`, `{start:<strftime>}`,
`{end:<strftime>}` — checked when the declaration loads, and the filled path must stay inside the data folder or a
root the platform declares (SHIPSHAPE_DATA_ROOTS; symlinks resolved) so a declaration cannot read other files of
the worker. An absolute template is allowed for the declared roots; which roots exist is known only where the run
is, so that check is made when the path is filled.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from shipshape.errors import SourceError
from shipshape.partitions import Window
from shipshape.settings import DATA_ROOTS_VARIABLE

_FIELD = re.compile(r"\{([^{}]*)\}")
_DATA_DIR = "{data_dir}"
_BOUNDS = ("start", "end")
FIX = "use only {data_dir}, {start:<strftime>} and {end:<strftime>}, e.g. {data_dir}/landing/{start:%Y-%m-%d}.csv"
FIELD = "source.path"


def template_problems(template: str) -> list[str]:
    """What is wrong with a path template, each with the fix; empty when it is valid."""
    problems = [f"unknown placeholder {{{inner}}}" for inner in _FIELD.findall(template) if not _known(inner)]
    literal = _FIELD.sub("", template)
    if "{" in literal or "}" in literal:
        problems.append("unmatched '{' or '}'")
    if not template.startswith((_DATA_DIR + "/", "/")):
        problems.append(
            "the path must start with {data_dir}/ or be absolute (files are read only from the data folder "
            f"or a root the platform declares in {DATA_ROOTS_VARIABLE})"
        )
    if ".." in Path(template).parts:
        problems.append("'..' is not allowed in the path")
    return problems


def fill_path(template: str, data_dir: Path, window: Window, roots: Sequence[Path] = ()) -> Path:
    """The file the template names for `window`, resolved and checked to lie inside `data_dir` or one of `roots`."""
    bounds = {"start": window.start, "end": window.end}

    def substitute(match: re.Match[str]) -> str:
        name, _, spec = match.group(1).partition(":")
        if name == "data_dir":
            return str(data_dir)
        bound = bounds.get(name)
        if bound is None:
            raise SourceError(
                f"file source: cannot fill path template {template!r} for partition {window.key}: it uses "
                f"{{{name}}} but the partition has no window; declare a partition or remove the placeholder"
            )
        return bound.strftime(spec)

    problems = template_problems(template)
    if problems:
        raise SourceError(f"file source: path template {template!r}: {'; '.join(problems)}; {FIX}")
    path = Path(_FIELD.sub(substitute, template)).resolve()
    allowed = [data_dir.resolve(), *(root.resolve() for root in roots)]
    if not any(path.is_relative_to(root) for root in allowed):
        raise SourceError(
            f"file source: field {FIELD!r}: got {template!r}, which names the file {path} for partition {window.key} "
            f"(symlinks resolved), outside the allowed roots {', '.join(map(str, allowed))} (the data folder, then "
            f"{DATA_ROOTS_VARIABLE}); move the file under one of them, or ask the platform team to declare its folder"
        )
    return path


def _known(inner: str) -> bool:
    name, colon, spec = inner.partition(":")
    if name == "data_dir":
        return not colon
    return name in _BOUNDS and spec.startswith("%")
