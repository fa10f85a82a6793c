"""Files seqemb writes and reads back: all-or-nothing outputs and checked JSON.

Outputs are written into a hidden temporary sibling of the target; only a finished
output is moved onto the target with :func:`os.replace` (atomic on one file system), so
a crash leaves either the old output or the new one, never half of one. A temporary's name
carries its writer's pid (``.NAME.<pid>-<hex>.tmp``), so what a killed process left behind is
recognised and removed by :func:`sweep_temporaries`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from embeddings.errors import ConfigError, DataError, NotFoundError

# .NAME.<pid>-<8 hex>.tmp / .old: what atomic_directory writes beside its target.
_TEMPORARY = re.compile(r"^\..+\.(?P<pid>[0-9]+)-[0-9a-f]{8}\.(?:tmp|old)$")


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; move it onto ``path`` only on success."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory next to ``path``; it becomes ``path`` only on success.

    An existing directory ``path`` is replaced as a whole: it is moved aside, the new directory
    is moved in, then the old one is deleted. An existing file ``path`` is refused.
    """
    path = Path(path)
    check_output_dir(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create its folder {path.parent} ({exc.strerror or exc})") from None
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = path.with_name(f".{path.name}.{tag}.tmp")
    old = path.with_name(f".{path.name}.{tag}.old")
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def sweep_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries of :func:`atomic_directory` in ``folder`` whose writer (a process on
    this machine) is gone; return what was removed."""
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match and not psutil.pid_exists(int(match["pid"])):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def check_output_dir(path: str | os.PathLike | None) -> None:
    """Raise :class:`ConfigError` unless a directory can be written at ``path`` (None: nothing to check).

    Checked before a job starts, so a bad ``--out`` costs no training and creates nothing: ``path``
    must not be an existing file, and its nearest existing ancestor must be a writable directory.
    """
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: is a file; a model is saved as a directory")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{path}: cannot create its folder {path.parent} ({ancestor} is a file)")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: cannot create its folder {path.parent} ({ancestor} is not writable)")


def read_json(path: Path, expected: type) -> Any:
    """Parse the JSON file ``path`` and check that its top level is an ``expected`` (dict, list)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, expected):
        raise DataError(f"{path}: expected a JSON {expected.__name__}, got {type(data).__name__}")
    return data


def format_tag(name: str, version: int) -> str:
    """The format tag every seqemb manifest carries: ``"seqemb.<name>/<version>"``."""
    return f"seqemb.{name}/{version}"


def read_manifest(directory: str | os.PathLike, filename: str, fmt: str, what: str) -> dict[str, Any]:
    """The JSON manifest ``directory/filename`` of a saved ``what`` (e.g. "a recommender"),
    checked to be a dict whose ``format`` is ``fmt`` (a :func:`format_tag`); a missing file is
    :class:`NotFoundError`."""
    path = Path(directory) / filename
    if not path.is_file():
        raise NotFoundError(f"{directory}: not {what} directory (no {filename})")
    meta = read_json(path, dict)
    if meta.get("format") != fmt:
        raise DataError(f"{path}: format is {meta.get('format')!r}, expected {fmt!r}")
    return meta
