"""Small shared helpers: logging, progress bars, atomic folder writes, code version."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Callable

log = logging.getLogger("genre_models")


def quiet() -> bool:
    """Progress bars stay off in CI and when stderr is not a terminal."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or not sys.stderr.isatty()


def progress(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=quiet(), leave=False, dynamic_ncols=True, **kwargs)


def atomic_dir(target: Path, write: Callable[[Path], None]) -> None:
    """Write a folder's files into a temp folder beside ``target`` (parent folders are created),
    then rename it into place in one step."""
    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "meta.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the genre-bench checkout this code runs from, or None (e.g. a wheel install)."""
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def code_version() -> str:
    from genre_models import __version__

    commit = git_commit()
    return f"{__version__}+{commit[:12]}" if commit else __version__
