"""The train stage: one net, one MLflow run.

Resolves the config from the net's registry spec, opens the feature store, splits it, runs the
one training loop (``training.loop.fit``), touches the test set once, and records everything
through the run logger. A net with ``uses_gan`` (net6) is handed its generated set
(``augmentation``) by the get-or-run layer (``genre_models.workflow``); this stage never runs
another stage.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from genre_models.config import TrainConfig, flat_params
from genre_models.data.splits import PARTS, effective_tracks
from genre_models.data.store import FeatureStore
from genre_models.data.summary import missing_words, repeat_counts
from genre_models.errors import ConfigError, DataError
from genre_models.genres import GENRES, N_CLASSES
from genre_models.models.classical import fit_classical, grid_size
from genre_models.models.classical import n_parameters as classical_size
from genre_models.models.classical import probabilities as classical_probabilities
from genre_models.models.registry import InputShape, NetSpec, count_parameters, get_net, make_optimizer, resolve_config
from genre_models.models.saved import save_net, shape_of
from genre_models.tracking.models import WEIGHTS_DIR
from genre_models.tracking.records import base_tags, dataset_words
from genre_models.tracking.shipping import open_features, segment_audio_array
from genre_models.training.evaluate import (
    PREDICTIONS_FILE, absent_genres, evaluate, floors, track_predictions, write_eval_artifacts,
)
from genre_models.training.generation import Augmentation
from genre_models.training.logger import NULL_LOGGER, RunLogger
from genre_models.training.loop import History, Part, fit, make_batches, part_bytes, predict_proba, split_parts
from genre_models.training.runtime import prepare_device, resident_fits, resolve_device, resolve_precision, seed_everything
from genre_models.util import code_version, log


@dataclass
class TrainResult:
    run_id: str | None
    config: TrainConfig
    metrics: dict
    history: History
    model: nn.Module
    confusion: np.ndarray
    tags: dict = field(default_factory=dict)


def run_name(cfg: TrainConfig) -> str:
    """``net2-e100-track-s0``; a classical baseline, fitted once, has no epochs: ``svm-track-s0``."""
    epochs = "" if get_net(cfg.net).family == "classical" else f"-e{cfg.epochs}"
    return f"{cfg.net}{epochs}-{cfg.split_config.label}-s{cfg.seed}"


@dataclass
class _Data:
    """What a run trains and is scored on, and what it logs about them."""

    store: FeatureStore
    cache_key: str
    parts: dict[str, Part]
    counts: dict  # n_<part>, n_test_tracks (+ n_train_real, n_generated): logged as parameters
    tags: dict  # net6: which GAN served; ``warnings``: what the split lacks


def _with_generated(parts: dict[str, Part], aug: Augmentation) -> tuple[dict, dict]:
    """Append the generated set to the training part only; validation and test stay real."""
    gen = aug.generated
    tr = parts["train"]
    extra = Part(torch.from_numpy(np.array(gen.mfcc)), torch.from_numpy(gen.labels),
                 np.full(len(gen), -1))  # track -1: generated, belongs to no track
    parts = {**parts, "train": Part(torch.cat([tr.x, extra.x]), torch.cat([tr.y, extra.y]),
                                    np.concatenate([tr.track, extra.track]))}
    tags = {"gan_run_id": aug.run_id or "", "gan_key": gen.meta.get("gan_key", ""), "gan_reused": str(aug.reused).lower()}
    counts = {"n_generated": len(gen)}  # per genre: the GAN run's gan.per_genre
    return parts, {"tags": tags, "counts": counts}


def _data(cfg: TrainConfig, spec: NetSpec, augmentation: Augmentation | None) -> _Data:
    pre = open_features(cfg)
    audio = segment_audio_array(pre.store, cfg.jobs) if spec.input_kind == "raw" else None
    parts = split_parts(pre.store, spec.input_kind, cfg.split_config, audio)
    n_train_real, train_tracks = len(parts["train"]), np.unique(parts["train"].track)
    groups = pre.store.groups  # per usable track: its repeat group (rows of the store's tracks)
    n_train_effective = max(1, round(effective_tracks(groups[int(i)] for i in train_tracks)))
    present = set(pre.store.tracks.genre)
    untrained = [g for g in absent_genres(parts["train"].y.numpy()) if g in present]  # before any generated clip
    extra = {"tags": {}, "counts": {}}
    if spec.uses_gan:
        if augmentation is None:
            raise ConfigError(f"{cfg.net} trains on a generated set; run it through genre_models.workflow.train_net, "
                              "which finds or trains its GAN")
        parts, extra = _with_generated(parts, augmentation)
    if spec.input_kind == "image" and pre.store.images.shape[0] == 0:
        raise DataError(f"{cfg.data_dir}: no images to train {cfg.net} on: image_source={cfg.features.image_source} "
                        "and no Kaggle PNG was found (images_original/<genre>/<genre>NNNNN.png)")
    for name in PARTS:  # checked before training: an empty test part would only fail after it
        if len(parts[name]) == 0:
            raise DataError(f"{cfg.data_dir}: the {name} part of {cfg.split_config.words} is empty; "
                            f"{len(pre.store.tracks)} usable tracks")
    counts = {**{f"n_{name}": len(parts[name]) for name in PARTS}, "n_test_tracks": len(np.unique(parts["test"].track)),
              "n_train_tracks": len(train_tracks), "n_train_effective": n_train_effective,
              "test_genres_absent": ",".join(absent_genres(parts["test"].y.numpy())) or "none",
              "train_genres_absent": ",".join(untrained) or "none",
              **({"n_train_real": n_train_real} if spec.uses_gan else {}), **extra["counts"]}
    tags = dict(extra["tags"])
    if untrained:
        tags["warnings"] = missing_words("train", cfg.split_config, untrained)
        log.warning("%s", tags["warnings"])
    return _Data(pre.store, pre.key, parts, counts, tags)


def describe(cfg: TrainConfig, spec: NetSpec, store: FeatureStore, counts: dict) -> str:
    """The run's description (MLflow's note), one sentence a reader of the runs table can trust."""
    budget = (f"early stopping on val_loss (patience {cfg.patience}, at most {cfg.epochs} epochs)" if cfg.early_stopping
              else f"{cfg.epochs} epochs")
    how = (f"fitted once with {spec.optimizer}, its hyper-parameters chosen on validation" if spec.family == "classical"
           else f"trained with {spec.optimizer} lr {cfg.lr:g}, {budget}")
    gen = f" plus {counts['n_generated']:,} WaveGAN-generated segments" if "n_generated" in counts else ""
    return (f"{cfg.net} ({spec.summary.split(';')[0]}) {how}, on "
            f"{cfg.split_config.words} of {dataset_words(store)}: {counts.get('n_train_real', counts['n_train']):,} training "
            f"{spec.input_kind} samples{gen}; "
            f"tested once on {counts['n_test_tracks']} tracks ({counts['n_test']:,} samples).")


def _record_start(cfg: TrainConfig, spec: NetSpec, data: _Data, device: torch.device, logger: RunLogger) -> dict:
    """Tags (one per fact, and the run's description), the resolved config with the counts as
    parameters, and the dataset input; returns the tags."""
    logged_cfg = flat_params(cfg)
    if not spec.uses_gan:  # the GAN settings mean nothing to nets that do not use one
        logged_cfg = {k: v for k, v in logged_cfg.items() if not (k.startswith("gan.") or k == "gan_run_id")}
    store = data.store
    tags = {**base_tags(store), "net": cfg.net, **cfg.split_config.tags, "stage": "train",
            "input_kind": spec.input_kind, "net_origin": spec.origin, "net_family": spec.family,
            **({"net_baseline": spec.baseline} if spec.baseline else {}), "image_sources": ",".join(sorted(set(store.tracks.image_source) - {""})),
            "mlflow.note.content": describe(cfg, spec, store, data.counts), **data.tags}
    logger.set_tags(tags)
    logger.log_params({**logged_cfg, "resolved_device": str(device), "optimizer": spec.optimizer,
                       "cache_key": data.cache_key, **data.counts, **repeat_counts(store)})
    logger.log_dataset(store, cfg.split_config, context="train")
    return tags


def _score(predict: Callable[[str], tuple[np.ndarray, float]], data: _Data) -> tuple[dict, dict]:
    """Test (touched here, once, after training) and validation track-level scores; plus the
    test predictions for the confusion matrix and report. ``predict(part)``: (probabilities, loss)."""
    from sklearn.metrics import confusion_matrix

    track_labels = data.store.tracks.label.to_numpy()
    test, val = data.parts["test"], data.parts["val"]
    probs, test_loss = predict("test")
    ev = evaluate(probs, test.y.numpy(), test.track, track_labels, test_loss)  # never empty: ``_data`` checks
    val_probs, val_loss = predict("val")
    val_ev = evaluate(val_probs, val.y.numpy(), val.track, track_labels, val_loss)
    y_pred = probs.argmax(1)
    confusion = confusion_matrix(test.y.numpy(), y_pred, labels=list(range(N_CLASSES)))
    scores = {**{f"test_{k}": v for k, v in ev.items() if not k.startswith("n_")},
              "val_track_accuracy": val_ev["track_accuracy"], **floors(data.parts)}
    tracks = track_predictions(probs, test.track, list(data.store.tracks.track_id), track_labels, data.store.groups)
    return scores, {"y_true": test.y.numpy(), "y_pred": y_pred, "confusion": confusion, "tracks": tracks}


def _record_end(cfg: TrainConfig, spec: NetSpec, shape: InputShape, model: nn.Module, hist: History, metrics: dict,
                data: _Data, pred: dict, logger: RunLogger) -> None:
    """Artifacts (the net as data, ``weights/``, among them), the MLflow model unless told not
    to, then the final scores linked to the model and the evaluation dataset; read back before FINISHED."""
    def write(out) -> None:
        write_eval_artifacts(out, hist, pred["confusion"], pred["y_true"], pred["y_pred"], run_name(cfg))
        pred["tracks"].to_csv(out / PREDICTIONS_FILE, index=False)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        save_net(out / WEIGHTS_DIR, spec, model, cfg.features, cfg.head, weights_epoch(cfg, hist), code_version())

    written = logger.log_artifacts(write)
    model_id = None
    if cfg.log_model:
        model_id = logger.log_model(model, name="model", example=spec.input_example(shape, batch=2),
                                    metadata=net_metadata(spec, cfg), step=weights_epoch(cfg, hist))
    final = {k: v for k, v in metrics.items() if k not in data.counts}
    logger.log_evaluation(final, store=data.store, split=cfg.split_config, model_id=model_id)
    logger.verify(final, {k: len(hist.epochs) for k in hist.epochs[0]} if hist.epochs else {}, written)


def net_metadata(spec: NetSpec, cfg: TrainConfig) -> dict:
    """What rides along in the logged MLflow model, for the UI (genre-bench itself reads the card)."""
    return {"net": spec.name, "input_kind": spec.input_kind, "genres": list(GENRES), "features": asdict(cfg.features)}


def weights_epoch(cfg: TrainConfig, hist: History) -> int:
    """The epoch the final weights come from: the best one under early stopping, else the last."""
    return hist.best_epoch if cfg.early_stopping and hist.best_epoch else hist.stopped_epoch


@dataclass
class _Fit:
    """How one net is trained: prepared before its run opens (so a bad device fails first),
    trained inside it by ``run``, then scored by ``predict(part)`` -> (probabilities, loss)."""

    trained: Callable[[], object]  # the model, once ``run`` has trained it
    device: torch.device
    params: dict  # logged when the run opens
    run: Callable[[RunLogger], History]
    predict: Callable[[str], tuple[np.ndarray, float]]
    size: Callable[[], int]  # parameters, once trained


def _torch_fit(cfg: TrainConfig, spec: NetSpec, data: _Data, shape: InputShape, why: str) -> _Fit:
    """A torch net: built from its spec, trained by the one loop (``training.loop.fit``)."""
    device = resolve_device(cfg.device)
    model = spec.build(shape, cfg.head)
    if hasattr(model, "fit_input_stats"):
        model.fit_input_stats(data.parts["train"].x)
    model.to(device)
    optimizer = make_optimizer(spec, model.parameters(), cfg.lr)
    prepare_device(device)
    resident = resident_fits(part_bytes(data.parts), device)
    loaders = make_batches(data.parts, cfg.batch_size, cfg.training_seed, cfg.num_workers, device, resident)

    def run(logger: RunLogger) -> History:
        log.info("training %s (%s parameters) on %d %s samples, device %s%s", cfg.net, f"{count_parameters(model):,}",
                 len(data.parts["train"]), spec.input_kind, device, " (split resident on it)" if resident else "")
        return fit(model, optimizer, loaders["train"], loaders["val"], epochs=cfg.epochs, device=device,
                   precision=cfg.precision, early_stopping=cfg.early_stopping, patience=cfg.patience,
                   min_delta=cfg.min_delta, logger=logger)

    return _Fit(lambda: model, device, {"resident_data": str(resident).lower(), "precision_choice": why}, run,
                lambda part: predict_proba(model, loaders[part], device, cfg.precision), lambda: count_parameters(model))


def _classical_fit(cfg: TrainConfig, spec: NetSpec, data: _Data, shape: InputShape, why: str) -> _Fit:
    """A classical baseline (``models.classical``): fitted in one call on the CPU, its
    hyper-parameters chosen on validation; its one "epoch" is that fit."""
    state: dict = {}  # "fitted": the Fitted, once run
    xs = {name: part.x.numpy() for name, part in data.parts.items()}
    ys = {name: part.y.numpy() for name, part in data.parts.items()}

    def run(logger: RunLogger) -> History:
        t0 = time.perf_counter()
        log.info("fitting %s on %d %s samples (%d hyper-parameter settings, chosen on validation)", cfg.net,
                 len(ys["train"]), spec.input_kind, grid_size(spec.name))
        fitted = state["fitted"] = fit_classical(spec.name, xs["train"], ys["train"], xs["val"], ys["val"], cfg.training_seed,
                                                 data.parts["train"].track, data.parts["val"].track)
        hist = History(best_epoch=1, stopped_epoch=1, train_seconds=time.perf_counter() - t0,
                       samples_seen=fitted.samples * len(fitted.tried))
        hist.epochs.append({**_part_metrics(fitted.model, xs["train"], ys["train"], "train"),
                            **_part_metrics(fitted.model, xs["val"], ys["val"], "val")})
        logger.log_metrics(hist.epochs[0], step=1)
        logger.log_params({**{f"chosen.{k}": v for k, v in fitted.chosen.items()}, "fit_samples": fitted.samples})
        return hist

    def predict(part: str) -> tuple[np.ndarray, float]:
        probs = classical_probabilities(state["fitted"].model, xs[part])
        return probs, _log_loss(probs, ys[part])

    return _Fit(lambda: state["fitted"].model, torch.device("cpu"),
                {"precision_choice": "classical baseline: scikit-learn, on the CPU"}, run, predict,
                lambda: classical_size(state["fitted"].model))


def _log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)).mean()) if len(y) else 0.0


def _part_metrics(model, x: np.ndarray, y: np.ndarray, part: str) -> dict:
    probs = classical_probabilities(model, x)
    return {f"{part}_loss": _log_loss(probs, y), f"{part}_accuracy": float((probs.argmax(1) == y).mean()) if len(y) else 0.0}


_FITTERS = {"torch": _torch_fit, "classical": _classical_fit}


def train(cfg: TrainConfig, *, logger: RunLogger = NULL_LOGGER, augmentation: Augmentation | None = None) -> TrainResult:
    """Train one net end to end. ``augmentation``: the generated set a ``uses_gan`` net adds to
    its training part (validation and test stay real)."""
    cfg = resolve_config(cfg)
    spec = get_net(cfg.net)
    if augmentation is not None:
        cfg = replace(cfg, gan=augmentation.gan)  # the settings of the GAN actually used, for the logged config
    data = _data(cfg, spec, augmentation)
    seed_everything(cfg.training_seed)  # seed and fold (``RunSection.training_seed``)
    precision, why = resolve_precision(cfg.precision, resolve_device(cfg.device))
    cfg = replace(cfg, precision=precision)  # what ran is what is logged; ``precision_choice`` says why
    shape = shape_of(cfg.features)
    trainer = _FITTERS[spec.family](cfg, spec, data, shape, why)
    with logger.start(run_name(cfg)):
        tags = _record_start(cfg, spec, data, trainer.device, logger)
        logger.log_params(trainer.params)
        hist = trainer.run(logger)
        logger.log_params({"n_parameters": trainer.size()})
        scores, pred = _score(trainer.predict, data)
        metrics = {**data.counts, **scores, "best_epoch": hist.best_epoch, "stopped_epoch": hist.stopped_epoch,
                   "train_time_s": hist.train_seconds,
                   "samples_per_sec": hist.samples_seen / max(hist.train_seconds, 1e-9)}
        model = trainer.trained()
        _record_end(cfg, spec, shape, model, hist, metrics, data, pred, logger)
        run_id = logger.run_id
    log.info("%s: test_accuracy %.4f, test_track_accuracy %.4f (best epoch %d, stopped %d)", cfg.net,
             metrics.get("test_accuracy", float("nan")), metrics.get("test_track_accuracy", float("nan")),
             hist.best_epoch, hist.stopped_epoch)
    return TrainResult(run_id, cfg, metrics, hist, model, pred["confusion"], tags)
