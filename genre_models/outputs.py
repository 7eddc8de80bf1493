"""Output folders a command writes (a report's files), never through a link a stranger planted.

A report's ``<stem>_files/`` used to be written with ``mkdir(exist_ok=True)`` and plain writes:
a symlink planted in its place sent 29 files into the folder it pointed to, and a second report
into the same ``--out`` left the first experiment's tables beside the new ones. Here the files
are written into a fresh folder beside the target, then put in its place: what was there before
(a folder, or a link, which is removed and never followed) goes whole.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

from genre_models.errors import DataError


def check_not_linked(folder: Path) -> None:
    """Refuse, in one line, to write into ``folder`` when it is a symbolic link."""
    if folder.is_symlink():
        raise DataError(f"{folder}: is a symbolic link (to {os.readlink(folder)}); genre-bench writes no output "
                        f"through a link: name the real folder ({folder.resolve()}) or remove the link")


def replace_folder(target: Path, write: Callable[[Path], None]) -> None:
    """``write(folder)`` into a fresh folder beside ``target``, then put it in ``target``'s place.
    The parent must not be a link (``check_not_linked``); an old folder or link at ``target`` is
    removed first, a link as a link. Not atomic between the two steps: a reader may find no
    folder for an instant, never a mixed or half-written one."""
    parent = target.parent
    check_not_linked(parent)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    old = parent / f".old-{target.name}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(mode=0o755)
        write(tmp)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            os.rename(target, old)
        os.rename(tmp, target)
    except OSError as exc:
        raise DataError(f"{target}: could not be written ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
