"""Small shared helpers: logging, progress bars, atomic folder writes (and their clean-up), code version."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import signal
import stat
import socket
import subprocess
import sys
import tempfile
import uuid
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Callable

log = logging.getLogger("genre_models")

#: Set by ``benchmark -v``: a sweep's points then log their own INFO lines (training, cache reuse,
#: results) in the driver's process and in its workers; otherwise only their warnings reach the
#: console, beside the sweep's progress line.
VERBOSE_ENV = "GENRE_BENCH_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextmanager
def point_console():
    """Within one sweep point: only the library's warnings, unless ``verbose()``."""
    before = log.level
    if not verbose():
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(before)


def quiet() -> bool:
    """Progress bars stay off in CI and when stderr is not a terminal."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or not sys.stderr.isatty()


def progress(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=quiet(), leave=False, dynamic_ncols=True, **kwargs)


_OWNER = ".owner"  # inside a temp folder: "host pid" of the process writing it


def atomic_dir(target: Path, write: Callable[[Path], None]) -> None:
    """Write a folder's files into a temp folder beside ``target`` (parent folders are created),
    then rename it into place in one step. A full disk or an unwritable folder is a one-line
    ``DataError`` naming the folder; the temp folder never outlives a failure of this process
    (one a killed process left is removed by ``remove_orphans``)."""
    check_entry(target)
    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        (tmp / _OWNER).write_text(" ".join(this_process()))
        write(tmp)
        (tmp / _OWNER).unlink()
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "meta.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _disk_error(target, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def within(path: str | Path, root: Path) -> bool:
    """Whether ``path``, with every link resolved, lies inside the folder ``root``."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real.startswith(top.rstrip(os.sep) + os.sep)


def check_entry(path: Path) -> None:
    """Refuse, in one line, a cache entry that is a symbolic link: genre-bench neither reads its
    cache through a link nor writes through one (it could point anywhere, another user's files too)."""
    if path.is_symlink():
        from genre_models.errors import DataError

        raise DataError(f"{path}: this cache entry is a symbolic link (to {os.readlink(path)}), not a folder "
                        "genre-bench wrote; it never reads or writes its cache through a link: remove the link and run again")


def remove_entry(path: Path) -> None:
    """Remove a cache entry without following a link: a symlink is unlinked (what it points to
    stays), a folder removed with its files; nothing there is nothing to do."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _short_write(target: Path, exc: OSError) -> bool:
    """numpy reports a full disk as a short write (``OSError: N requested and M written``, no
    errno); so does anything else that checks what ``write`` returned. Either that wording, or
    no space left where the cache is."""
    if re.search(r"\d+ requested and \d+ written", str(exc)):
        return True
    try:
        return shutil.disk_usage(target.parent).free == 0
    except OSError:
        return False


def _disk_error(target: Path, exc: OSError) -> Exception:
    """The errors a user can act on, in one line; anything else unchanged."""
    from genre_models.errors import DataError

    if exc.errno == errno.ENOSPC or (exc.errno is None and _short_write(target, exc)):
        return DataError(f"{target.parent}: disk full while writing {target.name}; free some space and run again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DataError(f"{target.parent}: not writable ({exc.strerror}); use another --cache-dir")
    return exc


def check_writable(folder: Path) -> None:
    """Fail before any work, in one line, when ``folder`` cannot hold a cache."""
    from genre_models.errors import DataError

    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: the cache folder is a file, not a folder; use another --cache-dir")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as exc:
        raise DataError(f"{folder}: the cache folder is not writable ({exc.strerror}); use another --cache-dir") from None


def check_out(path: str | Path, force: bool, option: str = "--out", create: bool = False) -> Path:
    """An output file, checked before any work: its folder exists (``create``: or can be made in
    the nearest folder that does) and is writable, it is not a folder or a device, and a file
    already there is replaced only with ``force``. One line (``ConfigError``) otherwise."""
    from genre_models.errors import ConfigError

    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    while create and not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if p.exists() and not p.is_file():
        raise ConfigError(f"{option} {p}: not a regular file (a folder, a device or a pipe); name a file")
    if p.exists() and not force:
        raise ConfigError(f"{option} {p} already exists; add --force to replace it")
    if not folder.is_dir():
        raise ConfigError(f"{option} {p}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {p}: the folder {folder} is not writable")
    return p


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """``write(temp file)`` beside ``path``, then rename it into place in one step: a reader never
    sees half a file, and a full disk leaves none (one line, ``DataError``)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        from genre_models.errors import DataError

        tmp.unlink(missing_ok=True)
        full = exc.errno == errno.ENOSPC or (exc.errno is None and _short_write(path, exc))
        raise DataError(f"{path}: " + ("disk full, nothing was written; free some space and run again" if full else
                                       f"could not be written ({exc.strerror or exc})")) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_orphans(folder: Path) -> list[str]:
    """Remove the temp folders in ``folder`` whose writer, a process on this host, is gone."""
    removed = []
    for tmp in folder.glob(".tmp-*"):
        try:
            host, pid, *started = (tmp / _OWNER).read_text().split()
        except (OSError, ValueError):  # being set up right now, or not ours: leave it
            continue
        if host == socket.gethostname() and process_gone(int(pid), started[0] if started else ""):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp.name)
    if removed:
        log.info("removed %d temp folder(s) that killed runs left in %s", len(removed), folder)
    return removed


def process_started(pid: int) -> str:
    """A token for when process ``pid`` started (Linux: its start time in clock ticks since boot),
    or "" where the system does not say; with the pid it names one process, even after pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22 (starttime); the command name may hold spaces


def this_process() -> tuple[str, str, str]:
    """(host, pid, start token) of this process, as strings."""
    pid = os.getpid()
    return socket.gethostname(), str(pid), process_started(pid)


def process_gone(pid: int, started: str = "") -> str | None:
    """Why process ``pid`` of this host (started at ``started``, if known) is provably gone, or
    None when it may still be running (alive, or another user's process we may not signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"process {pid} has exited"
    except PermissionError:  # another user's live process
        return None
    now = process_started(pid)
    if started and now and now != started:
        return f"process {pid} has exited (the pid now belongs to another process)"
    return None


def usable_cores() -> int:
    """The cores this process may run on (its affinity), or every core where that is unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def safe_name(name: str) -> str:
    """``name`` as one safe file or folder name: letters, digits, ``.``, ``_`` and ``-`` only, no
    leading dot, never ``..`` or a path. A name that had to change gets a short hash of the
    original, so two different names never share a file (``../../x`` -> ``x-2f1a8e``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")
    if cleaned == name and cleaned and len(cleaned) <= SAFE_NAME_CHARS:
        return cleaned
    return f"{(cleaned or 'unnamed')[:SAFE_NAME_CHARS]}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


#: The longest safe name before its hash: file systems refuse names over 255 bytes, and a report
#: adds ``.tmp-`` and its stem to its experiment's folder name.
SAFE_NAME_CHARS = 100


#: What makes a spreadsheet read a CSV cell as a formula (OWASP's CSV-injection rule): a text
#: cell starting with one of these gets a leading single quote, so it is shown as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _shown(ch: str) -> str:
    return ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")


def visible(text: str) -> str:
    """Text with every character that would change how it reads shown as its escape (``\\n``,
    ``\\x1b``, ``\\u202e``, ``\\u200b``): controls (a newline splits a table row or fakes a log
    line, ESC drives the terminal), format characters (bidirectional overrides and marks,
    zero-width ones), separators and unassigned code points; Python's ``isprintable`` is the
    rule, so a new Unicode version's format characters are covered too. Ordinary spaces stay."""
    return text if text.isprintable() else "".join(map(_shown, text))


class VisibleFormatter(logging.Formatter):
    """``LEVEL message`` with the message passed through ``visible``: a clip, file or folder
    named with a newline or ESC prints as its escapes, never as a fake ``INFO`` line or a
    terminal command."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = visible(record.message)
        return super().formatMessage(record)


def console_logging(level: int, stream=None) -> None:
    """The suite's console log: ``LEVEL message`` lines on stderr, every message made visible."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(VisibleFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


def csv_text(value):
    """A CSV cell that no spreadsheet runs as a formula: text starting with ``FORMULA_STARTS``
    is prefixed with ``'``, and control or direction characters are shown escaped (``visible``);
    numbers and everything else pass unchanged."""
    if not isinstance(value, str):
        return value
    value = visible(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def write_csv(df, path, index: bool = False) -> None:
    """``df.to_csv(path)`` with every text cell, column name and index label made safe by
    ``csv_text``: names and tags from a shared store reach these files. Written atomically."""
    from pandas.api.types import is_numeric_dtype

    safe = df.copy()
    for col in safe.columns:
        if not is_numeric_dtype(safe[col]):  # object and pandas' string dtype alike
            safe[col] = safe[col].map(csv_text)
    safe.columns = [csv_text(c) for c in safe.columns]
    safe.index = [csv_text(i) for i in safe.index]
    if safe.index.name is not None or df.index.name is not None:
        safe.index.name = csv_text(df.index.name)
    atomic_write(path, lambda tmp: safe.to_csv(tmp, index=index))


def private_dir(path: Path) -> bool:
    """Make ``path`` a folder only this user can enter (0700), or check the one there is: True
    when it is a real folder (not a symlink) owned by this user that nobody else could write in.
    One of ours that others could only read (an older genre-bench made it 0755) is closed to 0700;
    one that others could write in, another user's, or a symlink is refused."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        st = os.lstat(path)
        if not (stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()) or st.st_mode & 0o022:
            return False
        if st.st_mode & 0o077:
            os.chmod(path, 0o700)  # a folder of ours, checked above: not a link
        return True
    except OSError:
        return False


def write_private(path: Path, text: str) -> None:
    """Write a new file at ``path`` (0600) without following a link planted there: an existing
    entry (a file or a symlink) is removed first, then the file is created exclusively."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def die_with_parent(parent: int | None = None) -> None:
    """Linux: this process gets SIGKILL when its parent dies (kill -9 included), and SIGTERM
    stops it, so no worker outlives the command that started it. Elsewhere: nothing.
    ``parent``: the pid that started this worker. A parent that died before this call (between
    the fork and the worker's start-up) sends no signal, so the worker then ends itself."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
        if parent is not None and os.getppid() != parent:  # orphaned already: re-parented to init
            os.kill(os.getpid(), signal.SIGKILL)


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
