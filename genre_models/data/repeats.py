"""Repeated recordings: clips that are the same excerpt of the same recording, found by a
fingerprint rather than a hash.

GTZAN repeats itself (Sturm 2013, "The GTZAN dataset: its contents, its faults, their effects on
evaluation"), and in the real data the copies are re-encodings, level changes and small shifts
of one excerpt: not one is bit-identical, so a hash of the samples finds none of them. A repeat
that lands on both sides of a split leaks its answer to the test.

**The fingerprint** (``features.repeat_fingerprint``): a correlation of aligned spectral
envelopes, chosen because it is cheap to compare all pairs with matrix products and every
change a copy of GTZAN shows leaves it nearly untouched. Per clip, a 24-band log-mel envelope
(60 Hz-8 kHz, 46 ms frames), floored 50 dB under its loudest cell, high-passed in time (minus a
2 s moving average per band, minus each frame's mean over the bands). Level, equalisation and a
codec's low-pass sit in the part that is taken away; requantisation and dither noise fall under
the floor; what is left is the note-by-note texture of the excerpt, which two different songs
do not share, whatever their artist or genre.

**Matching** (``find_repeats``), all pairs:

1. *Coarse*: 0.23 s frames (5 fingerprint frames averaged), each clip one unit vector; the
   cosine at every lag within ±0.7 s, one matrix product per lag. Where a clip is shorter than
   another by more than that, lags up to the difference (at most ``MAX_CUT_S``) are tried for
   that clip's rows, so a copy cut shorter at its start is found too. Pairs above
   ``CANDIDATE`` go on.
2. *Fine*: the cosine over the overlapping 46 ms frames only, at lags within ±0.3 s of the
   coarse one; the best is the pair's score. Pairs whose overlap is under ``MIN_OVERLAP`` of
   the shorter clip never count.
3. A score of at least ``THRESHOLD`` joins two clips; groups are the connected clips. Clips
   with the same decoded samples (equal ``audio_hash``) join with score 1.

Measured on the real sample (49 clips, 1,176 pairs): the highest score of two different songs
is 0.14; every variant the tests build from them (±3 dB, 8-bit requantisation, 1-LSB dither,
MP3/OGG/FLAC round trips, shifts up to 0.5 s, 3-5 s cut from either end) scores at least 0.84
with its original (``tests/test_repeats.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genre_models.data.features import FINGERPRINT_FRAME_S

#: Fingerprint frames averaged into one coarse frame (5 x 46 ms = 0.23 s).
POOL = 5
#: Lags tried for every pair, either way (a copy shifted by up to 0.5 s, plus a coarse frame).
BASE_SHIFT_S = 0.7
#: A clip shorter than another is also tried at lags up to the difference, but at most this far.
MAX_CUT_S = 10.0
#: Coarse cosine from which a pair is scored finely.
CANDIDATE = 0.3
#: Fine lags tried either side of the coarse lag.
FINE_SPAN_S = 0.3
#: Fine score from which two clips are one recording.
THRESHOLD = 0.7
#: The overlap a pair is scored on, as a share of the shorter clip.
MIN_OVERLAP = 0.8


@dataclass(frozen=True)
class Repeats:
    """Per clip (in the order given): its group's head (index of the group's first clip by
    name; -1 alone), its best score with another member, and that member (-1 alone)."""

    head: np.ndarray  # (n,) int
    score: np.ndarray  # (n,) float, 0 for a clip alone
    match: np.ndarray  # (n,) int

    @property
    def groups(self) -> dict[int, list[int]]:
        """head -> members (the head first), for the groups of two or more."""
        out: dict[int, list[int]] = {}
        for i in np.argsort(self.head, kind="stable"):
            if self.head[i] >= 0:
                out.setdefault(int(self.head[i]), []).append(int(i))
        return {h: sorted(m, key=lambda i: (i != h, i)) for h, m in out.items()}


def _coarse(fps: list[np.ndarray]) -> np.ndarray:
    """(n, F, B) unit-norm coarse fingerprints, zero-padded to the longest clip."""
    bands = fps[0].shape[1] if fps else 1
    longest = max((len(f) // POOL for f in fps), default=0)
    x = np.zeros((len(fps), max(longest, 1), bands), np.float32)
    for i, f in enumerate(fps):
        n = len(f) // POOL
        x[i, :n] = f[: n * POOL].astype(np.float32).reshape(n, POOL, bands).mean(1)  # (n, B)
    norm = np.linalg.norm(x.reshape(len(fps), -1), axis=1)
    return x / np.maximum(norm, 1e-12)[:, None, None]


def _shifted(x: np.ndarray, k: int) -> np.ndarray:
    """x[:, t - k] at t (zeros where it runs off): row i moved k frames later."""
    out = np.zeros_like(x)
    frames = x.shape[1]
    if k >= 0:
        out[:, k:] = x[:, : frames - k]
    else:
        out[:, : frames + k] = x[:, -k:]
    return out


def coarse_scores(fps: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Best coarse cosine of every pair over its lags, and that lag in coarse frames:
    (n, n) each, ``score[i, j]`` aligning clip i's frame t with clip j's frame t + lag."""
    x = _coarse(fps)  # (n, F, B)
    n, frames, _ = x.shape
    flat = x.reshape(n, -1)
    best = np.full((n, n), -1.0, np.float32)
    lag = np.zeros((n, n), np.int32)
    step = POOL * FINGERPRINT_FRAME_S
    base = int(np.ceil(BASE_SHIFT_S / step))
    length = np.array([len(f) * FINGERPRINT_FRAME_S for f in fps])
    # The widest lag each row may need: how much longer than it the longest other clip is.
    reach = np.minimum(np.maximum(length.max(initial=0) - length, 0), MAX_CUT_S)
    widest = min(frames - 1, base + int(np.ceil(reach.max(initial=0) / step)))
    for k in range(-widest, widest + 1):
        rows = np.arange(n) if abs(k) <= base else np.flatnonzero(base + np.ceil(reach / step) >= abs(k))
        if rows.size == 0:
            continue
        s = _shifted(x[rows], k).reshape(rows.size, -1) @ flat.T  # (rows, n)
        sub, sub_lag = best[rows], lag[rows]
        better = s > sub
        sub[better], sub_lag[better] = s[better], k
        best[rows], lag[rows] = sub, sub_lag
    # The pair is one pair whichever row found it: keep the better of (i, j) and (j, i).
    swap = best.T > best
    best = np.where(swap, best.T, best)
    lag = np.where(swap, -lag.T, lag)
    np.fill_diagonal(best, -1.0)
    return best, lag


def overlap_cosine(a: np.ndarray, b: np.ndarray, lag: int) -> tuple[float, int]:
    """Cosine of ``a[t]`` with ``b[t + lag]`` over the frames both have, and how many those are."""
    if lag >= 0:
        n = min(len(a), len(b) - lag)
        x, y = a[:n], b[lag : lag + n]
    else:
        n = min(len(a) + lag, len(b))
        x, y = a[-lag : -lag + n], b[:n]
    if n <= 0:
        return 0.0, 0
    x, y = x.astype(np.float32), y.astype(np.float32)
    den = float(np.sqrt(np.sum(x * x) * np.sum(y * y)))
    return (float(np.sum(x * y)) / den if den > 0 else 0.0), n


def fine_score(a: np.ndarray, b: np.ndarray, coarse_lag: int) -> float:
    """The best overlap cosine at fine lags around ``POOL * coarse_lag``."""
    span = int(np.ceil(FINE_SPAN_S / FINGERPRINT_FRAME_S))
    need = MIN_OVERLAP * min(len(a), len(b))
    best = 0.0
    for lag in range(POOL * coarse_lag - span, POOL * coarse_lag + span + 1):
        s, n = overlap_cosine(a, b, lag)
        if n >= need and s > best:
            best = s
    return best


def _components(n: int, pairs: dict[tuple[int, int], float]) -> np.ndarray:
    """Each clip's group root (union-find; the smallest index is the root)."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([root(i) for i in range(n)], dtype=np.int64)


def find_repeats(fingerprints: list[np.ndarray], names: list[str], hashes: list[str] | None = None) -> Repeats:
    """Group the clips that are one excerpt of one recording; see the module docstring.

    ``fingerprints``: ``features.repeat_fingerprint`` per clip, (frames, bands); ``names``: the
    clips' ids (a group's head is its first member by name); ``hashes``: the decoded audio's
    hash per clip, where equal ones join with score 1.
    """
    n = len(fingerprints)
    pairs: dict[tuple[int, int], float] = {}
    if n > 1:
        coarse, lag = coarse_scores(fingerprints)
        for i, j in zip(*np.nonzero(np.triu(coarse >= CANDIDATE, 1))):
            s = fine_score(fingerprints[i], fingerprints[j], int(lag[i, j]))
            if s >= THRESHOLD:
                pairs[(int(i), int(j))] = min(s, 1.0)
    by_hash: dict[str, int] = {}
    for i, h in enumerate(hashes or []):
        if h and h in by_hash:
            pairs[(by_hash[h], i)] = 1.0
        elif h:
            by_hash[h] = i
    return _repeats(n, names, pairs)


def _repeats(n: int, names: list[str], pairs: dict[tuple[int, int], float]) -> Repeats:
    roots = _components(n, pairs)
    score, match = np.zeros(n), np.full(n, -1)
    for (i, j), s in pairs.items():
        for a, b in ((i, j), (j, i)):
            if s > score[a]:
                score[a], match[a] = s, b
    head = np.full(n, -1)
    for r in np.unique(roots):
        members = np.flatnonzero(roots == r)
        if members.size > 1:
            head[members] = min(members, key=lambda i: names[i])
    return Repeats(head, score, match)
