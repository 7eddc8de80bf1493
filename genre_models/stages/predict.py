"""The predict stage: classify a user's own clips with a trained net, using the preprocessing it
was trained with (the feature settings ride along in the net's card, ``models.saved``).

The net is read back as data (``tracking.models.fetch_net``: a JSON card and plain weights,
rebuilt from the registry), once, whatever the number of clips. Clips are decoded in parallel
and their inputs scored in batches, a chunk of clips at a time so memory stays bounded. A
folder is read recursively; every file in it is either scored or skipped with its reason.

Caveat for the image nets: a user's clip has no Kaggle PNG, so its image is rendered from the
audio. A model trained on the Kaggle PNGs (image_source=png/auto on the Kaggle copy) sees a
differently styled picture here (no white margins or axes), and its answer is less reliable.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from genre_models.config import FeatureConfig
from genre_models.data.audio import DecodedClip, decode_clip, from_pcm16, header_frames, sniff_audio, to_pcm16
from genre_models.data.features import image_of, mfcc_of, summary_stats
from genre_models.data.parallel import parallel_map
from genre_models.errors import BadAudio
from genre_models.models.saved import SavedNet, probabilities
from genre_models.tracking.models import fetch_net
from genre_models.tracking.setup import open_existing_store
from genre_models.util import write_csv

#: Clips decoded and scored together: bounds memory (a raw-audio net's inputs are 2.6 MB a clip).
CHUNK_CLIPS = 64


def model_inputs(clip: DecodedClip, input_kind: str, fcfg: FeatureConfig) -> np.ndarray:
    """One decoded clip -> the batch the net eats: (n_segments, frames, n_mfcc), (n_segments,
    samples) in [-1, 1], (n_segments, 74) statistics or (1, 3, S, S) in [0, 1]. Whatever the net, a clip is scored only if
    preprocessing would have kept it: at least one segment of sound after silence removal
    (``decode_clip`` has already refused silence)."""
    if clip.segments.shape[0] == 0:
        raise BadAudio(f"clip too short: {clip.kept_samples / fcfg.sample_rate:.2f} s of sound after silence removal; "
                       f"one segment needs {fcfg.segment_seconds:g} s")
    if input_kind == "raw":  # as stored for training: int16, then scaled
        return from_pcm16(to_pcm16(clip.segments))
    if input_kind == "stats":  # (n_segments, 74), as extraction computes them
        return summary_stats(clip.segments, fcfg)
    if input_kind == "mfcc":
        return mfcc_of(clip.segments, fcfg)
    return image_of(clip.y, fcfg)[None].astype(np.float32) / 255.0


def file_problem(path: str) -> str | None:
    """Why ``path`` cannot be a clip before it is decoded (missing, not a regular file, empty,
    no audio header), or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "dangling symlink (its target does not exist)" if os.path.islink(path) else "file does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a pipe, socket or device)"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    try:
        if sniff_audio(path, any_format=True) is None:
            return "not an audio file (no audio header: it is read by its first bytes, not its name)"
        return truncation(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"


def truncation(path: str) -> str | None:
    """Why a WAV or AU file is cut short: its header promises more frames than it holds (None if not)."""
    import soundfile as sf

    promised = header_frames(path)
    if promised is None:
        return None
    try:
        held = sf.info(path).frames
    except Exception:  # libsndfile's own errors: decoding will say what is wrong
        return None
    return (f"truncated: the header promises {promised} frames, the file holds {held}" if held < promised else None)


def clip_files(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The files to score and the ones skipped (path, reason), in the order given; a folder
    gives every file under it, sorted (hidden files and folders are skipped and said)."""
    files, skipped = [], []
    for path in paths:
        if not os.path.isdir(path):
            problem = file_problem(path)
            (skipped.append((path, problem)) if problem else files.append(path))
            continue
        for root, dirs, names in os.walk(path):  # links to folders are not followed: no loop
            skipped += [(os.path.join(root, d), "hidden folder") for d in sorted(dirs) if d.startswith(".")]
            skipped += [(os.path.join(root, d), "symlink to a folder (not followed: it could loop or lead outside)")
                        for d in sorted(dirs) if not d.startswith(".") and os.path.islink(os.path.join(root, d))]
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d)))
            for name in sorted(names):
                full = os.path.join(root, name)
                problem = "hidden file" if name.startswith(".") else file_problem(full)
                (skipped.append((full, problem)) if problem else files.append(full))
    return files, skipped


@dataclass
class ClipScore:
    file: str
    n_inputs: int
    probabilities: dict[str, float]  # genre -> mean probability over the clip's inputs

    def top(self, k: int) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]


@dataclass
class PredictResult:
    model_uri: str
    net: str
    input_kind: str
    clips: list[ClipScore] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    seconds: float = 0.0

    def as_dict(self, top: int) -> dict:
        return {"model_uri": self.model_uri, "net": self.net, "input_kind": self.input_kind,
                "clips": [{"file": c.file, "n_inputs": c.n_inputs, "top": c.top(top), "probabilities": c.probabilities}
                          for c in self.clips],
                "skipped": [{"file": f, "reason": r} for f, r in self.skipped]}

    def table(self) -> pd.DataFrame:
        """One row per clip, scored or skipped: the top genre, every genre's probability, or the reason."""
        rows = [{"file": c.file, "status": "scored", "genre": c.top(1)[0][0], "probability": c.top(1)[0][1],
                 "n_inputs": c.n_inputs, **c.probabilities, "reason": ""} for c in self.clips]
        rows += [{"file": f, "status": "skipped", "reason": r} for f, r in self.skipped]
        return pd.DataFrame(rows, columns=["file", "status", "genre", "probability", "n_inputs",
                                           *(self.clips[0].probabilities if self.clips else []), "reason"])

    def write_csv(self, path: str) -> None:
        write_csv(self.table(), path)


def _inputs_of(task: tuple[str, str, FeatureConfig]) -> tuple[np.ndarray | None, str]:
    """One file -> (its model inputs, "") or (None, why it is skipped). Runs in a worker. Any
    failure of one clip is that clip's skip, never the batch's end (a file deleted while the
    batch runs, a decoder's own error)."""
    path, kind, fcfg = task
    try:
        return model_inputs(decode_clip(path, fcfg, any_format=True), kind, fcfg), ""
    except BadAudio as exc:
        return None, str(exc)
    except FileNotFoundError:
        return None, "the file was removed while the batch ran"
    except MemoryError:
        return None, "too large to decode in memory"
    except Exception as exc:  # one clip's decoder failure of any kind: recorded as its skip, with the reason
        return None, f"could not be decoded ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"


def _score_chunk(saved: SavedNet, files: list[str], jobs: int, out: PredictResult) -> None:
    """Decode a chunk of clips in parallel, score all their inputs in batches, one mean per clip."""
    decoded = parallel_map(_inputs_of, [(f, saved.spec.input_kind, saved.features) for f in files], jobs, desc="clips")
    kept = [(f, x) for f, (x, _) in zip(files, decoded) if x is not None]
    out.skipped += [(f, why) for f, (x, why) in zip(files, decoded) if x is None]
    if not kept:
        return
    probs = probabilities(saved, np.concatenate([x for _, x in kept]))  # (all inputs, 10)
    at = 0
    for f, x in kept:
        mean = probs[at:at + len(x)].mean(0)
        at += len(x)
        out.clips.append(ClipScore(f, int(len(x)), {g: float(p) for g, p in zip(saved.genres, mean)}))


def predict(paths: list[str], model_uri: str, tracking_uri: str | None = None, jobs: int = 0) -> PredictResult:
    """Score every clip in ``paths`` (files and folders) with the net ``model_uri`` names: the
    mean softmax over a clip's segments (MFCC and raw nets) or its one image. A single file
    given alone that cannot be scored is an error (``BadAudio``); otherwise such files are
    skipped and listed. ``runs:/`` and ``models:/`` URIs are looked up in the store, which must exist."""
    t0 = time.perf_counter()
    files, skipped = clip_files(paths)
    single = len(paths) == 1 and not os.path.isdir(paths[0])
    if single and skipped:  # checked before the model is fetched, so a typo fails fast
        raise BadAudio(f"{skipped[0][0]}: {skipped[0][1]}")
    if not files:  # nothing to score: the model is not even fetched
        return PredictResult(model_uri, "", "", skipped=skipped, seconds=time.perf_counter() - t0)
    if model_uri.startswith(("runs:/", "models:/")):
        open_existing_store(tracking_uri)
    saved = fetch_net(model_uri)
    out = PredictResult(model_uri, saved.spec.name, saved.spec.input_kind, skipped=skipped)
    for at in range(0, len(files), CHUNK_CLIPS):
        _score_chunk(saved, files[at:at + CHUNK_CLIPS], jobs, out)
    if single and out.skipped:
        raise BadAudio(f"{out.skipped[0][0]}: {out.skipped[0][1]}")
    order = {f: i for i, f in enumerate(files)}
    out.clips.sort(key=lambda c: order[c.file])
    out.seconds = time.perf_counter() - t0
    return out


