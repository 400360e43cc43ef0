"""Folders gravity writes to (the result store, the compile cache, job arrays' pickles), made
private to the user unless they ask to share them.

Whoever can write to one of these folders can make gravity run their code: the job array's
`jobs/NAME/*.pkl` are unpickled by submitit, and the XLA cache holds native executables that JAX
loads. So they are created 0700 (files 0600). `GRAVITY_SHARED=1` makes them group-readable and
group-writable (0770 / 0660) for a team that shares one store on purpose: only for groups whose
members you trust. A folder found group- or world-writable is reported in one line (a warning),
never silently used.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

SHARED_ENV = "GRAVITY_SHARED"
_WARNED: set[str] = set()


def shared() -> bool:
    """Whether the user asked for group-shared folders (`GRAVITY_SHARED=1`)."""
    return os.environ.get(SHARED_ENV, "") not in ("", "0")


def folder_mode() -> int:
    return 0o770 if shared() else 0o700


def file_mode() -> int:
    return 0o660 if shared() else 0o600


def make_folder(path: Path | str) -> Path:
    """Create `path` and its missing parents with `folder_mode()` (the umask still applies)."""
    path = Path(path)
    missing = []
    parent = path
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=folder_mode())
        except FileExistsError:
            pass
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    return path


def writable_by_others(path: Path | str) -> bool:
    """Whether a user other than the owner can write to `path` (group or world write bits)."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IWGRP | stat.S_IWOTH))


def warn_if_writable_by_others(path: Path | str, what: str) -> bool:
    """One line on stderr (once per folder) when `path` can be written by other users and
    `GRAVITY_SHARED` was not set: `what` it holds is then trusted code for whoever can write it."""
    path = Path(path)
    if shared() or not writable_by_others(path) or str(path) in _WARNED:
        return False
    _WARNED.add(str(path))
    print(
        f"gravity: warning: {path} ({what}) is writable by other users, who could make gravity "
        f"run their code; chmod go-w it, or set {SHARED_ENV}=1 if the group is trusted",
        file=sys.stderr,
    )
    return True
