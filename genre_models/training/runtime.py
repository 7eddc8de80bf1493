"""Device, seed, precision and CPU threads: the runtime every loop shares."""

from __future__ import annotations

import os
import random
import re
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from genre_models.errors import ConfigError
from genre_models.settings import setting
from genre_models.util import log, private_dir, process_gone, process_started, usable_cores, write_private


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for but torch.cuda.is_available() is False")
    mps = getattr(torch.backends, "mps", None)
    if name == "mps" and not (mps is not None and mps.is_available()):
        raise ConfigError("device=mps was asked for but torch.backends.mps.is_available() is False (MPS is Apple "
                          "silicon's GPU)")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed every generator and ask for deterministic kernels. On CUDA, cuBLAS needs a fixed
    workspace for that (set here unless the user set one); cuDNN's autotuner (``prepare_device``)
    then picks among deterministic convolution algorithms only, so a GPU run repeats on the same
    GPU and software but may differ from a CPU run in the last bits."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def prepare_device(device: torch.device) -> None:
    """CUDA: let cuDNN time its convolution algorithms once per input shape (``cudnn.benchmark``);
    the shapes are fixed for a run, so this is paid in the first batches only."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


#: Keep a split on the GPU only while it takes at most this share of the free device memory:
#: the rest is for the model, activations and other processes' points (``--jobs`` on one GPU).
RESIDENT_SHARE = 0.25


def resident_fits(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` of data should live on ``device`` for the whole run (CUDA only: on a
    CPU the data is already in memory, and on MPS unified memory makes it moot)."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= RESIDENT_SHARE * free


def cpu_flags() -> set[str]:
    """This CPU's feature flags (Linux's /proc/cpuinfo); empty where the system does not say."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(device: torch.device) -> str | None:
    """Why ``device`` computes bf16 natively (a phrase), or None when bf16 would be emulated."""
    if device.type == "cuda":
        return f"CUDA {torch.cuda.get_device_name(device)}" if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        found = sorted(cpu_flags() & {"amx_bf16", "avx512_bf16"})
        return f"CPU with {' and '.join(found)}" if found else None
    return None


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """The precision a run computes in, and why: ``auto`` is bf16 where the hardware has native
    bf16 (``native_bf16``) and fp32 elsewhere (a CPU without bf16 units converts, at about half
    of fp32's speed: ``benchmark perf precision``); an explicit choice is kept."""
    if precision != "auto":
        return precision, "asked for"
    why = native_bf16(device)
    return ("bf16", f"auto: {why} has native bf16") if why else ("fp32", f"auto: {device.type} without native bf16")


def gpu_free_bytes(device: torch.device | None = None) -> int:
    """Free memory on the CUDA device now (what other processes and this one leave)."""
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


def autocast(device: torch.device, precision: str):
    """bf16 autocast when ``precision`` is bf16; a no-op context otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


# --------------------------------------------------------------------------- the thread budget
#
# Two processes that each run torch on every core slow each other down about 8x on a 2-core
# machine (their OpenMP threads spin against each other). So a genre-bench process that trains
# takes a share of the cores: while it computes it is listed in a per-user folder of live
# processes, and its torch threads are (usable cores) // (live processes), at least 1, looked
# at again about once a second. A process that exits, even by kill -9, drops out when the next
# one looks (its pid is gone). ``GENRE_BENCH_THREADS=N`` (or ``OMP_NUM_THREADS=N``) fixes this
# process's threads at N (it still counts for the others). Results are bit-identical only at
# the same thread count, so fix it when you compare runs bit for bit.
#
# OpenMP's wait policy is left alone: with the budget no process has more threads than its
# cores, so spinning threads do not meet, and ``OMP_WAIT_POLICY=PASSIVE`` measured about 20%
# slower for a process alone (``benchmark perf contention``).

_REFRESH_S = 1.0
_share: dict = {"depth": 0, "next": 0.0, "entry": None, "threads_before": 0, "warned": False}


def _share_dir() -> Path | None:
    """The folder of processes sharing the cores: ``$TMPDIR/genre-bench-$UID/cpu-share``, private
    to this user (0700). Where that path is not (another user made it first, it is a symlink, or
    others may write in it), ``~/.cache/genre-bench/cpu-share-<host>`` is used instead, which
    the same user's other processes find too; None when neither can be made private."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    shared = Path(tempfile.gettempdir()) / f"genre-bench-{uid}"
    if private_dir(shared) and private_dir(shared / "cpu-share"):
        return shared / "cpu-share"
    own = Path.home() / ".cache" / "genre-bench"
    fallback = own / f"cpu-share-{socket.gethostname()}"
    own.mkdir(parents=True, exist_ok=True)
    if not _share["warned"]:
        _share["warned"] = True
        log.warning("%s is not a private folder of this user (another user's, a symlink, or open to others): the "
                    "cores are shared through %s instead", shared, fallback)
    return fallback if private_dir(fallback) else None


def live_sharers(folder: Path | None = None) -> int:
    """How many processes (this one included, if listed) share the cores now; dead entries go."""
    folder = folder or _share_dir()
    if folder is None:
        return 1
    live = 0
    for entry in folder.glob("*"):
        try:
            pid, started = int(entry.name), entry.read_text()
        except (OSError, ValueError):
            continue
        if process_gone(pid, started):
            entry.unlink(missing_ok=True)
        else:
            live += 1
    return live


def fair_threads() -> int:
    """This process's torch threads now: ``GENRE_BENCH_THREADS`` (else ``OMP_NUM_THREADS``, as
    Ray sets for its tasks) when given, else its share of the cores."""
    cores = usable_cores()
    fixed = setting("GENRE_BENCH_THREADS")
    if not fixed:
        omp = os.environ.get("OMP_NUM_THREADS", "").strip()  # Ray's and the user's: ignored unless a plain count
        fixed = int(omp) if re.fullmatch(r"[0-9]{1,6}", omp) else 0
    if fixed:
        return max(1, min(fixed, cores))  # more threads than cores only thrash
    return max(1, cores // max(1, live_sharers()))


def refresh_threads(force: bool = False) -> None:
    """Inside ``cpu_share``: set torch's threads to this process's share, at most once a second."""
    now = time.monotonic()
    if _share["depth"] == 0 or (now < _share["next"] and not force):
        return
    _share["next"] = now + _REFRESH_S
    threads = fair_threads()
    if threads != torch.get_num_threads():
        log.debug("torch threads %d -> %d", torch.get_num_threads(), threads)
        torch.set_num_threads(threads)


@contextmanager
def cpu_share() -> Iterator[None]:
    """List this process among those computing for the block (nested blocks count once)."""
    if _share["depth"] == 0:
        folder = _share_dir()
        try:
            if folder is None:
                raise OSError("no private folder for it")
            entry = folder / str(os.getpid())
            write_private(entry, process_started(os.getpid()))  # never through a link planted there
            _share["entry"] = entry
        except OSError as exc:  # a read-only /tmp: run with the threads torch chose
            log.info("not sharing the cores with other genre-bench processes (%s)", exc)
        _share["threads_before"] = torch.get_num_threads()
    _share["depth"] += 1
    try:
        refresh_threads(force=True)
        yield
    finally:
        _share["depth"] -= 1
        if _share["depth"] == 0:
            if _share["entry"] is not None:
                _share["entry"].unlink(missing_ok=True)
                _share["entry"] = None
            torch.set_num_threads(_share["threads_before"])
