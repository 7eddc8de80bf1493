"""Classify a user's own clip with a logged model, using the preprocessing it was trained with.

Caveat for the image nets: a user's clip has no Kaggle PNG, so its image is rendered from the
audio. A model trained on the Kaggle PNGs (image_source=png/auto on the Kaggle copy) sees a
differently styled picture here (no white margins or axes), and its answer is less reliable.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from genre_models.config import FeatureConfig
from genre_models.dataset import load_any_audio
from genre_models.errors import BadAudio, ConfigError
from genre_models.features import mfcc_batch, segment, spectrogram_image, trim_silence


def model_inputs(y: np.ndarray, input_kind: str, fcfg: FeatureConfig) -> np.ndarray:
    """One clip -> the batch the net eats: (n_segments, frames, n_mfcc) or (1, 3, S, S) in [0, 1]."""
    if input_kind == "mfcc":
        kept = trim_silence(y, fcfg.silence_top_db, fcfg.n_fft, fcfg.hop_length)
        segs = segment(kept, fcfg.segment_samples)
        if segs.shape[0] == 0:
            raise BadAudio(f"clip too short: {kept.size / fcfg.sample_rate:.2f} s of sound after silence removal; "
                           f"one segment needs {fcfg.segment_seconds:g} s")
        return mfcc_batch(segs, fcfg.sample_rate, fcfg.n_mfcc, fcfg.n_fft, fcfg.hop_length, fcfg.n_mels)
    img = spectrogram_image(y, fcfg.sample_rate, fcfg.n_fft, fcfg.hop_length, fcfg.n_mels, fcfg.image_size)
    return (img[None].astype(np.float32) / 255.0)


def predict(audio_file: str, model_uri: str, top: int = 3) -> dict:
    """Average the softmax over the clip's segments (MFCC nets) or score its one image."""
    import mlflow

    # Checked before the model is fetched, so a typo fails fast.
    if not os.path.exists(audio_file):
        raise BadAudio(f"{audio_file}: file does not exist")
    info = mlflow.models.get_model_info(model_uri)
    meta = info.metadata or {}
    if "input_kind" not in meta or "features" not in meta:
        raise ConfigError(f"{model_uri}: not a genre-bench model (no input_kind/features metadata)")
    fcfg = FeatureConfig(**meta["features"])
    genres = meta["genres"]
    try:
        y = load_any_audio(audio_file, fcfg.sample_rate)
        x = model_inputs(y, meta["input_kind"], fcfg)
    except BadAudio as exc:
        msg = str(exc)
        raise BadAudio(msg if msg.startswith(audio_file) else f"{audio_file}: {msg}") from None
    model = mlflow.pytorch.load_model(model_uri)
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
