"""The predict stage: classify a user's own clip with a logged model, using the preprocessing it
was trained with (the feature config rides along in the model's metadata).

Caveat for the image nets: a user's clip has no Kaggle PNG, so its image is rendered from the
audio. A model trained on the Kaggle PNGs (image_source=png/auto on the Kaggle copy) sees a
differently styled picture here (no white margins or axes), and its answer is less reliable.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from genre_models.config import FeatureConfig
from genre_models.data.audio import DecodedClip, decode_clip, from_pcm16, sniff_audio, to_pcm16
from genre_models.data.features import image_of, mfcc_of
from genre_models.errors import BadAudio, ConfigError
from genre_models.tracking.models import load_model, model_metadata
from genre_models.tracking.setup import open_existing_store


def model_inputs(clip: DecodedClip, input_kind: str, fcfg: FeatureConfig) -> np.ndarray:
    """One decoded clip -> the batch the net eats: (n_segments, frames, n_mfcc), (n_segments,
    samples) in [-1, 1] or (1, 3, S, S) in [0, 1]. Whatever the net, a clip is scored only if
    preprocessing would have kept it: at least one segment of sound after silence removal
    (``decode_clip`` has already refused silence)."""
    if clip.segments.shape[0] == 0:
        raise BadAudio(f"clip too short: {clip.kept_samples / fcfg.sample_rate:.2f} s of sound after silence removal; "
                       f"one segment needs {fcfg.segment_seconds:g} s")
    if input_kind in ("mfcc", "raw"):
        if input_kind == "raw":  # as stored for training: int16, then scaled
            return from_pcm16(to_pcm16(clip.segments))
        return mfcc_of(clip.segments, fcfg)
    return image_of(clip.y, fcfg)[None].astype(np.float32) / 255.0


def predict(audio_file: str, model_uri: str, top: int = 3, tracking_uri: str | None = None) -> dict:
    """Average the softmax over the clip's segments (MFCC nets) or score its one image.
    ``runs:/`` and ``models:/`` URIs are looked up in the store, which must exist."""
    if top < 1:
        raise ConfigError(f"top must be at least 1, got {top}")
    # Checked before the model is fetched, so a typo fails fast.
    if not os.path.exists(audio_file):
        raise BadAudio(f"{audio_file}: file does not exist")
    if os.path.isfile(audio_file) and os.path.getsize(audio_file) == 0:
        raise BadAudio(f"{audio_file}: empty file (0 bytes)")
    if os.path.isfile(audio_file) and sniff_audio(audio_file, any_format=True) is None:
        raise BadAudio(f"{audio_file}: not an audio file (no audio header: it is read by its first bytes, not its name)")
    if model_uri.startswith(("runs:/", "models:/")):
        open_existing_store(tracking_uri)
    meta = model_metadata(model_uri)
    if "input_kind" not in meta or "features" not in meta:
        raise ConfigError(f"{model_uri}: not a genre-bench model (no input_kind/features metadata)")
    fcfg = FeatureConfig(**meta["features"])
    genres = meta["genres"]
    try:
        x = model_inputs(decode_clip(audio_file, fcfg, any_format=True), meta["input_kind"], fcfg)
    except BadAudio as exc:
        raise BadAudio(f"{audio_file}: {exc}") from None
    model = load_model(model_uri)
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(x)), dim=1).mean(0).numpy()  # (10,)
    order = np.argsort(-probs)[:top]
    return {
        "file": audio_file,
        "net": meta.get("net", "?"),
        "input_kind": meta["input_kind"],
        "n_inputs": int(x.shape[0]),
        "top": [(genres[i], float(probs[i])) for i in order],
        "probabilities": {g: float(p) for g, p in zip(genres, probs)},
    }
