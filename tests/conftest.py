"""Shared fixtures: tiny generated datasets, a temp MLflow store and feature cache per test.

Tests that need the real GTZAN sample read its folder from GTZAN_SAMPLE_DIR and are skipped
without it; everything else runs on data generated here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_models.genres import GENRES
from genre_models.data.synth import SynthConfig, synth_track, write_synthetic_gtzan

SR = 22050


def write_wav(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype="PCM_16")
    return path


def kaggle_tree(root: Path, per_genre: int = 3, seconds: float = 3.0, genres=GENRES) -> Path:
    """A minimal Kaggle-layout tree of synthetic clips: root/Data/genres_original/<g>/<g>.NNNNN.wav."""
    for gi, g in enumerate(genres):
        for i in range(per_genre):
            write_wav(root / "Data" / "genres_original" / g / f"{g}.{i:05d}.wav", synth_track(g, seconds, seed=gi * 100 + i))
    return root


def bad_kaggle_tree(root: Path) -> Path:
    """Two good clips per genre, a stereo 44.1 kHz one, and the brief's bad files: a headerless
    WAV (as the Kaggle jazz.00054), an empty file, a clip under one segment, a text file."""
    kaggle_tree(root, per_genre=2, seconds=2.5)
    gdir = root / "Data" / "genres_original"
    (gdir / "jazz" / "jazz.00054.wav").write_bytes(np.random.default_rng(0).integers(-3000, 3000, 40000, dtype=np.int16).tobytes())
    (gdir / "rock" / "rock.00009.wav").write_bytes(b"")
    write_wav(gdir / "pop" / "pop.00008.wav", synth_track("pop", 0.6, 3))  # shorter than one segment
    stereo = np.stack([synth_track("metal", 3.0, 4, sr=44100), synth_track("metal", 3.0, 5, sr=44100)], axis=1)
    write_wav(gdir / "metal" / "metal.00007.wav", stereo, sr=44100)
    (gdir / "disco" / "notes.txt").write_text("not audio")
    return root


@pytest.fixture
def tmp_store(tmp_path, monkeypatch):
    """A private MLflow store and feature cache; returns the tracking URI."""
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("GENRE_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # mlflow.set_experiment exports it
    mlflow.set_tracking_uri(uri)
    from genre_models.tracking.setup import setup_tracking

    setup_tracking()  # also resets MLflow's process-wide active experiment to this store's
    yield uri
    mlflow.end_run()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The built-in demo data, small: 5 tracks per genre of 4 s (3/1/1 per genre under `track`)."""
    out = tmp_path_factory.mktemp("demo")
    write_synthetic_gtzan(SynthConfig(out=str(out), tracks_per_genre=5, seconds=4.0, seed=0))
    return out


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    path = os.environ.get("GTZAN_SAMPLE_DIR")
    if not path or not Path(path).is_dir():
        pytest.skip("GTZAN_SAMPLE_DIR is not set to the real GTZAN sample")
    return Path(path)
