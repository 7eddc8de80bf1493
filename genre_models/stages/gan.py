"""The gan stage: train (or resume) a WaveGAN on the training split's audio, generate its
labelled set, score it, and record it all as one MLflow run.

The real-data net that scores the generated clips (the quality figure) is handed in as a
``Scorer`` by the get-or-run layer (``genre_models.workflow``), which finds a finished run of
the registry's ``scores_gan`` net or trains one; this stage never runs another stage.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genre_models.config import GanConfig, flat_params
from genre_models.data.audio import from_pcm16, write_wav
from genre_models.data.segment_audio import RealAudio
from genre_models.data.store import FeatureStore
from genre_models.errors import DataError, GanDiverged
from genre_models.genres import GENRES, N_CLASSES
from genre_models.models.wavegan import SLICE_LEN, GenreGenerator
from genre_models.tracking.records import base_tags, dataset_words
from genre_models.tracking.shipping import data_label, open_features, training_audio_for
from genre_models.training.gan_loop import GanTraining, GanUnit, gan_key, train_wavegan
from genre_models.training.generation import GeneratedSet, generate_set, generation_quality
from genre_models.training.logger import NULL_LOGGER, RunLogger
from genre_models.training.runtime import resolve_device
from genre_models.util import log


@dataclass
class Scorer:
    """A real-data classifier for the quality figure, and where it came from."""

    model: Callable[[torch.Tensor], torch.Tensor]  # (B, frames, n_mfcc) -> (B, 10) logits
    source: str  # "run <id>" or "trained here (...)", for the run's tags
    test_accuracy: float


@dataclass
class GanResult:
    run_id: str | None
    key: str
    generated: GeneratedSet
    quality: dict
    training: GanTraining
    n_real: int


def gan_run_name(cfg: GanConfig) -> str:
    return f"gan-{cfg.gan.mode}-d{cfg.gan.d}-{cfg.gan.steps}steps-{cfg.split_config.label}-s{cfg.seed}"


def _loss_figure(history: list[dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(history)
    df.to_csv(out / "gan_history.csv", index=False)
    if df.empty:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for col in ("d_loss", "g_loss"):
        a1.plot(df.step, df[col], label=col)
    a1.set_xlabel("step"), a1.legend(), a1.set_title("losses")
    a2.plot(df.step, df.wasserstein, label="wasserstein estimate")
    a2.plot(df.step, df.gp, label="gradient penalty")
    a2.set_xlabel("step"), a2.legend(), a2.set_title("critic")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "gan_losses.png", dpi=110)
    plt.close(fig)


def _real_examples(real: RealAudio, cfg: GanConfig, out: Path) -> None:
    """One real training segment per genre, for listening beside the previews."""
    for i, genre in enumerate(GENRES):
        rows = np.flatnonzero(real.labels == i)
        if len(rows):
            seg = from_pcm16(real.audio[rows[len(rows) // 2]])
            write_wav(out / f"{genre}.wav", seg[:SLICE_LEN], cfg.features.sample_rate)


def _generator_model(units: list[GanUnit], cfg: GanConfig) -> tuple[torch.nn.Module, torch.Tensor]:
    """The generator(s) as one model: (B, latent + 10) [z, one-hot genre] -> (B, 16384), and an example."""
    model = GenreGenerator([u.G.to("cpu").eval() for u in units], cfg.gan.latent_dim, N_CLASSES).eval()
    z = torch.randn(2, cfg.gan.latent_dim)
    example = torch.cat([z, torch.nn.functional.one_hot(torch.tensor([0, 3]), N_CLASSES).float()], 1)  # (2, latent + 10)
    return model, example


def _record_start(cfg: GanConfig, store: FeatureStore, key: str, real: RealAudio, device: torch.device, workdir: Path,
                  logger: RunLogger) -> None:
    g = cfg.gan
    note = (f"WaveGAN ({g.mode}, d {g.d}, {g.steps:,} steps of batch {g.batch_size}, WGAN-GP, phase shuffle "
            f"{g.phase_shuffle}) learning from {len(real):,} real 1 s segments of {len(real.track_ids)} training tracks "
            f"of {cfg.split_config.words} of {dataset_words(store)}; generates {g.per_genre:,} clips per genre.")
    logger.set_tags({**base_tags(store), "stage": "gan", "gan_key": key, **cfg.split_config.tags,
                     "gan_cache": str(workdir), "mlflow.note.content": note})
    logger.log_params({**{k: v for k, v in flat_params(cfg).items() if k != "data_dir"},
                       "data_dir": data_label(cfg.data_dir), "resolved_device": str(device),
                       "n_real_segments": len(real), "n_real_tracks": len(real.track_ids)})
    logger.log_dataset(store, cfg.split_config, context="gan-train")
    logger.log_artifacts(lambda out: _real_examples(real, cfg, out), "previews/real")


def _record_end(cfg: GanConfig, trained: GanTraining, gen: GeneratedSet, quality: dict, scorer: Scorer,
                logger: RunLogger) -> None:
    logger.log_params({"n_parameters_g": sum(p.numel() for u in trained.units for p in u.G.parameters()),
                       "n_parameters_d": sum(p.numel() for u in trained.units for p in u.D.parameters()),
                       "n_generated": len(gen)})  # per genre: gan.per_genre (generated/labels.npy has each clip's)
    final = {**quality, "quality_net_test_accuracy": scorer.test_accuracy,
             "gan_train_time_s": trained.seconds, "gan_steps_done": trained.step}
    logger.log_metrics(final)
    logger.set_tags({"quality_net": scorer.source, "generated_dir": gen.path, "checkpoint": trained.checkpoint,
                     "resumed": str(bool(trained.resumed_from)).lower()})

    def write(out: Path) -> None:
        _loss_figure(trained.history, out, gan_run_name(cfg))
        (out / "gan_config.json").write_text(json.dumps(asdict(cfg), indent=2))

    logger.log_artifacts(write)
    for name in ("mfcc.npy", "labels.npy", "meta.json"):
        logger.log_file(Path(gen.path) / name, "generated")
    if cfg.log_model:
        model, example = _generator_model(trained.units, cfg)
        logger.log_model(model, name="generator", example=example,
                         metadata={"kind": "wavegan-generator", "mode": cfg.gan.mode, "d": cfg.gan.d,
                                   "genres": list(GENRES), "latent_dim": cfg.gan.latent_dim,
                                   "sample_rate": cfg.features.sample_rate})
    logger.verify(final, {}, ["gan_losses.png", "gan_config.json", "generated", "previews"])


def run_gan(cfg: GanConfig, *, scorer: Scorer, logger: RunLogger = NULL_LOGGER, fresh: bool = False) -> GanResult:
    """Train (or resume) a WaveGAN on the training split, generate its set, score it with
    ``scorer``, and record it all with ``logger``."""
    store = open_features(cfg).store
    key = gan_key(cfg, store.digest)
    real = training_audio_for(store, cfg.split_config, cfg.features, cfg.cache_dir, cfg.jobs)
    if len(real) == 0:
        raise DataError(f"{cfg.data_dir}: the training part of {cfg.split_config.words} has no segments")
    device = resolve_device(cfg.device)
    workdir = Path(cfg.cache_dir).expanduser() / "gan" / key
    with logger.start(gan_run_name(cfg)):
        _record_start(cfg, store, key, real, device, workdir, logger)
        try:
            trained = train_wavegan(cfg, real, device, workdir, key, fresh=fresh, logger=logger)
        except GanDiverged:
            logger.set_tags({"last_good_checkpoint": str(workdir / "checkpoint.pt")})
            raise
        gen = generate_set(trained.units, cfg, device, workdir / "generated", key)
        quality = generation_quality(scorer.model, gen)
        _record_end(cfg, trained, gen, quality, scorer, logger)
        run_id = logger.run_id
    log.info("WaveGAN %s: %d steps (%s), %d clips, quality accuracy %.3f (chance 0.1)", key, trained.step,
             f"resumed from {trained.resumed_from}" if trained.resumed_from else "fresh", len(gen),
             quality["gen_quality_accuracy"])
    return GanResult(run_id, key, gen, quality, trained, len(real))
