"""The file source's path template, filled by explicit substitution rather than `str.format`.

`str.format` evaluates attribute and index lookups inside the braces, so a declaration could write
`{data_dir.__class__.__new__.__globals__[os].environ[PREFECT_API_KEY]}` and read any of the worker's
secrets into an error message. Here a template knows exactly three fields — `{data_dir}`, `{start:<strftime>}`,
`{end:<strftime>}` — checked when the declaration loads, and the filled path must stay inside the data folder
(symlinks resolved) so a declaration cannot read other files of the worker.
"""

from __future__ import annotations

import re
from pathlib import Path

from shipshape.errors import SourceError
from shipshape.partitions import Window

_FIELD = re.compile(r"\{([^{}]*)\}")
_DATA_DIR = "{data_dir}"
_BOUNDS = ("start", "end")
FIX = "use only {data_dir}, {start:<strftime>} and {end:<strftime>}, e.g. {data_dir}/landing/{start:%Y-%m-%d}.csv"


def template_problems(template: str) -> list[str]:
    """What is wrong with a path template, each with the fix; empty when it is valid."""
    problems = [f"unknown placeholder {{{inner}}}" for inner in _FIELD.findall(template) if not _known(inner)]
    literal = _FIELD.sub("", template)
    if "{" in literal or "}" in literal:
        problems.append("unmatched '{' or '}'")
    if not template.startswith(_DATA_DIR + "/"):
        problems.append("the path must start with {data_dir}/ (files are read only from the data folder)")
    if ".." in Path(template).parts:
        problems.append("'..' is not allowed in the path")
    return problems


def fill_path(template: str, data_dir: Path, window: Window) -> Path:
    """The file the template names for `window`, resolved and checked to lie inside `data_dir`."""
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
    root = data_dir.resolve()
    if not path.is_relative_to(root):
        raise SourceError(
            f"file source: path template {template!r} names {path} for partition {window.key}, outside the data "
            f"folder {root} (through a symlink or a partition value); move the file under the data folder"
        )
    return path


def _known(inner: str) -> bool:
    name, colon, spec = inner.partition(":")
    if name == "data_dir":
        return not colon
    return name in _BOUNDS and spec.startswith("%")
