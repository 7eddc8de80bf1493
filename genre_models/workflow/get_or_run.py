"""Resolve a stage's prerequisites, then run it. Stages never call each other; this does.

* ``train_net``: a net with ``uses_gan`` (net6) needs a generated set: from ``--gan-run-id``,
  else the newest FINISHED ``gan`` run with the same key, else ``run_gan`` first, as a run of
  its own (also inside ``mlflow run``).
* ``run_gan``: the GAN's quality figure needs a real-data run of the registry's ``scores_gan``
  net (net5) with the same data, split, seed and MFCC settings: a FINISHED one is reused, else
  one is trained here, untracked, with early stopping (``quality_epochs`` cap).
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields, replace
from pathlib import Path

from genre_models.config import DataConfig, GanConfig, RunSection, TrainConfig, WaveGanConfig, section
from genre_models.data.store import FeatureStore
from genre_models.errors import ConfigError, DamagedCache, ModelError
from genre_models.models.registry import gan_scorer, get_net
from genre_models.models.saved import SavedNet
from genre_models.stages import gan as gan_stage
from genre_models.stages import train as train_stage
from genre_models.tracking.models import download, fetch_net
from genre_models.tracking.queries import get_run
from genre_models.tracking.records import dataset_tag
from genre_models.tracking.setup import current_tracking_uri
from genre_models.tracking.shipping import open_features
from genre_models.training.gan_loop import gan_key
from genre_models.training.generation import Augmentation, GeneratedSet, load_generated
from genre_models.training.logger import NULL_LOGGER, RunLogger
from genre_models.training.runtime import resolve_device, resolve_precision
from genre_models.util import log, within


def resolved_gan(gan: WaveGanConfig, device: str) -> WaveGanConfig:
    """The WaveGAN settings with ``precision`` resolved for ``device`` (``auto`` -> bf16 or
    fp32), so a GAN's key names what it computes in; a device this machine lacks is an error."""
    precision, _ = resolve_precision(gan.precision, resolve_device(device))
    return replace(gan, precision=precision)


def train_net(cfg: TrainConfig, logger: RunLogger = NULL_LOGGER) -> train_stage.TrainResult:
    """Train one net, first resolving the generated set a ``uses_gan`` net needs."""
    cfg = replace(cfg, gan=resolved_gan(cfg.gan, cfg.device))  # also: a device this machine lacks, said now
    augmentation = augmentation_for(cfg, logger) if get_net(cfg.net).uses_gan else None
    return train_stage.train(cfg, logger=logger, augmentation=augmentation)


def run_gan(cfg: GanConfig, logger: RunLogger = NULL_LOGGER, fresh: bool = False) -> gan_stage.GanResult:
    """Run the gan stage, first resolving the real-data net that scores its clips."""
    cfg = replace(cfg, gan=resolved_gan(cfg.gan, cfg.device))
    store = open_features(cfg).store
    return gan_stage.run_gan(cfg, scorer=scorer_for(cfg, store, logger), logger=logger, fresh=fresh)


# --------------------------------------------------------------------------- the GAN's scorer


def _mfcc_features(features: dict) -> dict:
    """The feature settings an MFCC net depends on (image settings do not matter to it)."""
    return {k: v for k, v in features.items() if not k.startswith("image_")}


def _scorer_net(run) -> SavedNet | None:
    """A finished run's trained net, read back as data (``tracking.models.fetch_net``); None,
    with a warning naming the run, when its weights are missing, damaged or not a genre-bench net."""
    try:
        return fetch_net(f"runs:/{run.info.run_id}")
    except ModelError as exc:
        log.warning("not used to score generated clips: %s", exc)
        return None


def scorer_for(cfg: GanConfig, store: FeatureStore, logger: RunLogger) -> gan_stage.Scorer:
    """A FINISHED real-data run of the scorer net with this data, split, seed and MFCC settings
    (searched through ``logger``), else one trained here, untracked."""
    net = gan_scorer().name
    tags = {"net": net, **cfg.split_config.tags, "dataset": dataset_tag(store)}
    for run in logger.finished_runs(tags, max_results=20):
        found = _scorer_net(run)
        if found and _mfcc_features(asdict(found.features)) == _mfcc_features(asdict(cfg.features)):
            return gan_stage.Scorer(found.model, f"run {run.info.run_id}", run.data.metrics.get("test_accuracy", math.nan))
    log.info("training a real-data %s (early stopping, at most %d epochs) to score the generated clips", net,
             cfg.quality_epochs)
    res = train_stage.train(TrainConfig(net=net, epochs=cfg.quality_epochs, log_model=False,
                                        **section(cfg, DataConfig), **section(cfg, RunSection)))
    return gan_stage.Scorer(res.model.to("cpu").eval(), f"trained here (stopped at epoch {res.history.stopped_epoch})",
                            res.metrics.get("test_accuracy", math.nan))


# --------------------------------------------------------------------------- net6's generated set


def _generated_of(run, cfg: TrainConfig) -> GeneratedSet:
    """A GAN run's generated set, read back as data and checked (``load_generated``): from this
    machine's cache when the run's ``generated_dir`` tag names a folder inside the cache (a tag
    is data: a path outside it is never opened), else from the run's logged artifacts."""
    key = run.data.tags.get("gan_key")
    local = run.data.tags.get("generated_dir", "")
    if local and not within(local, Path(cfg.cache_dir).expanduser()):
        log.warning("run %s names its generated set %s, outside the cache %s: not opened; using the run's logged copy",
                    run.info.run_id, local, cfg.cache_dir)
    elif local and (Path(local) / "meta.json").is_file():
        try:
            return load_generated(local, cfg.features, key)
        except DamagedCache as exc:
            log.warning("%s; using the run's logged copy", exc)
    try:
        logged = download(run.info.run_id, "generated")
    except Exception as exc:  # MLflow's "no such artifact" and the like
        raise DamagedCache(f"GAN run {run.info.run_id}: its generated set cannot be read from the artifact store "
                           f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})") from None
    return load_generated(logged, cfg.features, key)


def _wavegan_config_of(run) -> WaveGanConfig:
    """The WaveGAN settings a gan run logged (``resolved.`` values win, as under ``mlflow run``)."""
    params = run.data.params
    values = {}
    for f in fields(WaveGanConfig):
        raw = params.get(f"resolved.gan.{f.name}", params.get(f"gan.{f.name}"))
        if raw is not None:
            values[f.name] = type(f.default)(raw)
    return WaveGanConfig(**values)


def _given_gan(cfg: TrainConfig, store: FeatureStore) -> Augmentation:
    """``--gan-run-id``: refused unless it is a FINISHED gan run on this split, seed and dataset,
    since a GAN trained on another split could have learned from this run's test tracks."""
    run = get_run(cfg.gan_run_id)
    if run is None:
        raise ConfigError(f"gan_run_id {cfg.gan_run_id}: no such run in {current_tracking_uri()}")
    tags = run.data.tags
    if tags.get("stage") != "gan":
        raise ConfigError(f"gan_run_id {cfg.gan_run_id} is not a gan run (stage={tags.get('stage', '?')})")
    if run.info.status != "FINISHED":
        raise ConfigError(f"gan_run_id {cfg.gan_run_id} is {run.info.status}, not FINISHED")
    want = {**cfg.split_config.tags, "dataset": dataset_tag(store)}
    have = {k: tags.get(k) for k in want}
    if have != want:
        theirs, ours = (", ".join(f"{k} {t[k]}" for k in want) for t in (have, want))
        raise ConfigError(f"gan_run_id {cfg.gan_run_id} was trained on {theirs}, but this run uses {ours}: its "
                          "training audio may include this run's validation or test tracks")
    return Augmentation(_generated_of(run, cfg), run.info.run_id, True, _wavegan_config_of(run))


def augmentation_for(cfg: TrainConfig, logger: RunLogger) -> Augmentation:
    """The generated set for a ``uses_gan`` net: given, found by key, or made by a GAN run first."""
    store = open_features(cfg).store
    if cfg.gan_run_id:
        return _given_gan(cfg, store)
    # The scorer net trained for the GAN's quality figure (when no finished run can serve) gets at
    # most the epochs asked of the net that needs the GAN, not GanConfig's 200.
    quality = {"quality_epochs": cfg.epochs} if cfg.epochs else {}
    gcfg = GanConfig(gan=cfg.gan, **quality, **section(cfg, DataConfig), **section(cfg, RunSection))
    key = gan_key(gcfg, store.digest)
    for run in logger.finished_runs({"stage": "gan", "gan_key": key}):  # net6 runs carry gan_key too
        try:
            gen = _generated_of(run, cfg)
        except DamagedCache as exc:
            log.warning("finished GAN run %s: %s; making the generated set again", run.info.run_id, exc)
            break
        log.info("%s uses finished GAN run %s (key %s)", cfg.net, run.info.run_id, key)
        return Augmentation(gen, run.info.run_id, True, cfg.gan)
    else:
        log.info("no finished GAN run with key %s: training one first", key)
    res = run_gan(gcfg, logger.prerequisite())
    return Augmentation(res.generated, res.run_id, False, cfg.gan)
