"""``benchmark``: a thin click layer over genre_models. Each command parses options, calls one
library function and prints its result. Errors the user can fix print as one line, exit 2."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys

import click

from genre_models.config import (
    DEVICES, GAN_MODES, HEADS, IMAGE_SOURCES, MAX_SEED, PRECISIONS, SPLITS, DataConfig, FeatureConfig, GanConfig, SplitConfig,
    TrainConfig, WaveGanConfig, default_cache_dir, default_of,
)
from genre_models.data.synth import SynthConfig
from genre_models.errors import GenreBenchError, Interrupted, interrupt_signal
from genre_models.models.registry import NETS, get_net
from genre_models.sweep.grid import DATA_ACCESS, EXECUTORS, GRIDS, MAX_SEEDS, SweepConfig


def _logger(enabled: bool = True, system_metrics: bool = False):
    """The run logger a command hands its stage: MLflow's, or one that keeps nothing."""
    from genre_models.tracking.logger import MlflowLogger
    from genre_models.training.logger import NULL_LOGGER

    return MlflowLogger(system_metrics=system_metrics) if enabled else NULL_LOGGER


def system_metrics_option(default: bool):
    return click.option("--system-metrics/--no-system-metrics", default=default,
                        help="Record CPU, memory (and, with nvidia-ml-py, GPU) use in each training and GAN run.")


class CliError(click.ClickException):
    """``error: ...`` on one line, exit code 2 (like click's own usage errors)."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", file=file or sys.stderr)


#: What ``--net`` takes, for its help.
NET_HELP = (f"A registry net ({', '.join(NETS)}), an installed plugin's name (`benchmark nets`), or a plugin "
            "as package.module:factory.")


def _net(ctx, param, value):
    """``--net``: the net's name, its plugin loaded and checked now, before any data is read."""
    if value is None:
        return value
    try:
        return get_net(value).name
    except GenreBenchError as exc:
        raise CliError(str(exc)) from None


def _torch_net(ctx, param, value):
    """``--net`` for a measurement of the training loop: a torch net (the baselines have no loop)."""
    name = _net(ctx, param, value)
    if name is not None and get_net(name).family != "torch":
        raise CliError(f"{name} is a classical baseline, fitted once without a training loop: this measures a torch "
                       f"net's ({', '.join(n for n, s in NETS.items() if s.family == 'torch')}, or a plugin's)")
    return name


def _nets(ctx, param, value):
    """``--nets``: comma-separated ``--net`` values, each loaded and checked now."""
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise click.BadParameter("no net given")
    return tuple(_net(ctx, param, v) for v in items)  # a name given twice is merged, with a note, by SweepConfig


def _one_line_errors(fn):
    """Turn the suite's own errors (and MLflow's) into ``error: ...`` on one line, exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (KeyboardInterrupt, Interrupted) as exc:  # the run, if any, already ended KILLED
            sig = interrupt_signal(exc)
            click.echo(f"error: interrupted by {sig}; any run in progress was ended KILLED", err=True)
            raise SystemExit(128 + signal.Signals[sig].value) from None
        except GenreBenchError as exc:
            raise CliError(str(exc)) from None
        except Exception as exc:
            from genre_models.tracking.setup import mlflow_error_message

            message = mlflow_error_message(exc)
            if message is None:
                raise
            raise CliError(message) from None

    return wrapper




def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


def tracking_options(fn):
    fn = click.option("--experiment", default=None, help="MLflow experiment [default: $MLFLOW_EXPERIMENT_NAME or gtzan-genre-benchmark].")(fn)
    fn = click.option("--tracking-uri", default=None, help="MLflow store [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db].")(fn)
    return fn


def split_options(cls: type, split_help: str = "How tracks are split into train, validation and test."):
    """--split, --seed, --fold and --folds, with ``cls``'s defaults."""
    def deco(fn):
        fn = click.option("--folds", type=click.IntRange(min=3), default=default_of(cls, "folds"),
                          help="--split kfold: the number of folds.")(fn)
        fn = click.option("--fold", type=click.IntRange(min=0), default=default_of(cls, "fold"),
                          help="--split kfold: the fold to test (0..folds-1); the next fold validates.")(fn)
        fn = click.option("--seed", type=click.IntRange(0, MAX_SEED), default=default_of(cls, "seed"))(fn)
        return click.option("--split", type=click.Choice(SPLITS), default=default_of(cls, "split"), help=split_help)(fn)
    return deco


def feature_options(fn):
    fn = click.option("--jobs", type=click.IntRange(min=0), default=default_of(DataConfig, "jobs"), show_default=True,
                      help="Feature-extraction processes (0: one per core).")(fn)
    fn = click.option("--cache-dir", default=default_cache_dir, show_default="$GENRE_BENCH_CACHE or ~/.cache/genre-bench",
                      help="Feature cache folder.")(fn)
    fn = click.option("--image-size", type=int, default=default_of(FeatureConfig, "image_size"), show_default=True,
                      help="Side of the square image input (net1-net4).")(fn)
    fn = click.option("--image-source", type=click.Choice(IMAGE_SOURCES), default=default_of(FeatureConfig, "image_source"),
                      show_default=True,
                      help="auto: Kaggle PNG when present, else rendered from audio; png; audio.")(fn)
    fn = click.option("--data-dir", required=True, type=click.Path(), help="GTZAN folder (top, Data/, or the genre folders' parent).")(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def main(quiet: bool) -> None:
    """genre-bench: honest, reproducible GTZAN genre classification, tracked in MLflow."""
    signal.signal(signal.SIGTERM, _raise_interrupted)  # SIGINT raises KeyboardInterrupt already
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr,
                        force=True)
    from genre_models.util import quiet as no_tty

    if no_tty():  # MLflow's own download bars ignore our quiet rule otherwise
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for noisy in ("matplotlib", "alembic", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow logs a store error with its whole traceback before raising it; the raised error is
    # what the user gets, in one line naming the store and the database's own words.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


@main.command()
@click.option("--out", required=True, type=click.Path(), help="Folder to write (Kaggle layout).")
@click.option("--tracks-per-genre", type=int, default=default_of(SynthConfig, "tracks_per_genre"))
@click.option("--seconds", type=float, default=default_of(SynthConfig, "seconds"))
@click.option("--seed", type=int, default=default_of(SynthConfig, "seed"))
@click.option("--with-images", is_flag=True, help="Also write Kaggle-style PNGs to Data/images_original.")
@click.option("--repeats", type=click.IntRange(min=0), default=default_of(SynthConfig, "repeats"),
              help="Extra tracks that are altered copies of earlier ones (level, requantisation, shift, cut, lossy), as GTZAN has.")
@_one_line_errors
def synth(out, tracks_per_genre, seconds, seed, with_images, repeats):
    """Write a synthetic GTZAN-like dataset (the built-in demo data)."""
    from genre_models.data.synth import write_synthetic_gtzan

    if tracks_per_genre < 1 or seconds <= 0:
        raise CliError("--tracks-per-genre must be at least 1 and --seconds positive")
    res = write_synthetic_gtzan(SynthConfig(out=out, tracks_per_genre=tracks_per_genre, seconds=seconds, seed=seed,
                                            with_images=with_images, repeats=repeats))
    click.echo(f"wrote {res['tracks']} synthetic tracks ({res['seconds']:g} s each) to {res['out']}")
    for r in res["repeats"]:
        click.echo(f"  {r['track']} repeats {r['of']}: {r['change']}")


@main.command()
@feature_options
@split_options(SplitConfig, "The split whose parts the run logs (the cache itself holds every split).")
@click.option("--force", is_flag=True, help="Recompute even when a matching cache exists.")
@click.option("--no-track", "no_log", is_flag=True, help="Do not log an MLflow run.")
@click.option("--publish", is_flag=True,
              help="Also log the feature cache as a features run, usable as --data-dir runs:/<id>/features on nodes "
                   "that cannot see the data.")
@click.option("--with-audio", is_flag=True, help="With --publish: ship every segment's audio too (the GAN needs it).")
@tracking_options
@_one_line_errors
def preprocess(data_dir, image_source, image_size, cache_dir, jobs, split, seed, fold, folds, force, no_log, publish,
               with_audio, tracking_uri, experiment):
    """Decode, trim, segment and featurise a GTZAN folder into the cache; log the manifest."""
    from genre_models.data.store import repeat_groups, split_counts
    from genre_models.stages.preprocess import preprocess as run
    from genre_models.tracking.setup import setup_tracking
    from genre_models.tracking.shipping import data_label

    if with_audio and not publish:
        raise CliError("--with-audio needs --publish")
    split_cfg = SplitConfig(split=split, seed=seed, fold=fold, folds=folds)
    cfg = DataConfig(data_dir=data_dir, features=FeatureConfig(image_size=image_size, image_source=image_source),
                     cache_dir=cache_dir, jobs=jobs)
    if not no_log or publish:
        setup_tracking(tracking_uri, experiment, end_orphans=True)
    res, run_id = run(cfg, split=split_cfg, logger=_logger(not no_log), force=force,
                      extra_params={"jobs": jobs, "data_dir": data_label(data_dir)})
    counts = split_counts(res.store, split_cfg)
    click.echo(f"{'reused' if res.reused else 'built'} feature cache {res.path} in {res.seconds:.1f} s")
    click.echo(f"dataset {res.store.dataset_name}@{res.store.digest} ({res.layout} layout): "
               f"{counts['tracks_total']} tracks, {res.store.mfcc.shape[0]} segments {tuple(res.store.mfcc.shape[1:])}, "
               f"{res.store.images.shape[0]} images {tuple(res.store.images.shape[1:])}, {len(res.skipped)} skipped")
    for part in ("train", "val", "test"):
        click.echo(f"  {split_cfg.label}/{part}: {counts[f'tracks_{part}']} tracks, {counts[f'segments_{part}']} segments, "
                   f"{counts[f'images_{part}']} images")
    for line in res.skipped:
        click.echo(f"  skipped {line}")
    for line in res.noted:
        click.echo(f"  kept {line}")
    groups = repeat_groups(res.store)
    click.echo(f"{counts['repeat_groups']} groups of repeated recordings ({counts['repeat_tracks']} tracks)")
    for line in groups:
        click.echo(f"  repeats {line}")
    if run_id:
        click.echo(f"MLflow run {run_id}")
    if publish:
        _publish(res, with_audio, jobs, experiment)


def _publish(res, with_audio: bool, jobs: int, experiment: str | None) -> None:
    from genre_models.tracking.records import base_tags
    from genre_models.tracking.setup import experiment_id, experiment_name
    from genre_models.tracking.shipping import features_uri, publish_features

    exp_id = experiment_id(experiment_name(experiment))
    fid, reused = publish_features(res.store, res.key, with_audio, exp_id, jobs, base_tags(res.store))
    click.echo(f"{'reused' if reused else 'published'} features run: --data-dir {features_uri(fid)}")


_GAN_HELP = {
    "steps": "Generator updates (each after n-critic critic updates).",
    "batch_size": "Real and generated clips per critic update.",
    "d": "Model size: channels scale with d (the paper's 64; 4-8 for CPU demos).",
    "mode": "conditional: one genre-conditioned GAN; per-genre: ten unconditional GANs.",
    "per_genre": "Generated clips per genre (the study's 2798).",
    "precision": "bf16 autocast for G and D forward passes; the gradient penalty stays fp32.",
    "latent_dim": "Size of z.",
    "n_critic": "Critic updates per generator update (the paper's 5).",
    "gp_weight": "Gradient-penalty weight lambda (the paper's 10).",
    "lr": "Adam learning rate, G and D.",
    "beta1": "Adam beta1, G and D.",
    "beta2": "Adam beta2, G and D.",
    "phase_shuffle": "Phase-shuffle range n in the critic (0: off).",
}
_GAN_CHOICES = {"mode": GAN_MODES, "precision": PRECISIONS}


def wavegan_options(prefix: str = "", note: str = ""):
    """One click option per ``WaveGanConfig`` field (``--steps`` or ``--gan-steps``), defaults from the dataclass."""
    from dataclasses import fields

    def deco(fn):
        for f in reversed(fields(WaveGanConfig)):
            default = default_of(WaveGanConfig, f.name)
            kind = click.Choice(_GAN_CHOICES[f.name]) if f.name in _GAN_CHOICES else type(default)
            flag = f"--{prefix}{f.name.replace('_', '-')}"
            fn = click.option(flag, f"{prefix.replace('-', '_')}{f.name}", type=kind, default=default,
                              help=f"{note}{_GAN_HELP.get(f.name, 'WaveGAN ' + f.name.replace('_', ' ') + '.')}")(fn)
        return fn

    return deco


def _wavegan_config(kw: dict, prefix: str = "") -> WaveGanConfig:
    """Pop the ``wavegan_options`` values out of ``kw`` into a WaveGanConfig."""
    from dataclasses import fields

    return WaveGanConfig(**{f.name: kw.pop(f"{prefix}{f.name}") for f in fields(WaveGanConfig)})


class FromNet(click.ParamType):
    """A number, or ``auto`` (= not given: the net's own value). The generic ``train`` entry
    point of ``MLproject`` passes ``auto`` where the user gave no ``-P``."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner, self.name = inner, f"{inner.name}|auto"

    def convert(self, value, param, ctx):
        if value is None or str(value).strip().lower() == "auto":
            return None
        return self.inner.convert(value, param, ctx)


def train_options(fn):
    opts = [
        click.option("--net", required=True, callback=_net, help=NET_HELP),
        click.option("--epochs", type=FromNet(click.IntRange(min=1)), default=None, help="Epochs (the maximum with early stopping) [default: from the net].",
                     show_default=False),
        click.option("--early-stopping", type=click.Choice(["auto", "on", "off"]), default="auto",
                     help="Early stopping on val_loss; auto: as the net's spec says."),
        click.option("--patience", type=FromNet(click.IntRange(min=1)), default=None, help="Early-stopping patience [default: from the net].", show_default=False),
        click.option("--min-delta", type=click.FloatRange(min=0), default=default_of(TrainConfig, "min_delta"), help="Smallest val_loss drop that counts as better."),
        click.option("--batch-size", type=FromNet(click.IntRange(min=1)), default=None, help="[default: from the net]", show_default=False),
        click.option("--lr", type=FromNet(click.FloatRange(min=0, min_open=True)), default=None, help="Learning-rate override [default: from the net].", show_default=False),
        click.option("--device", type=click.Choice(DEVICES), default=default_of(TrainConfig, "device")),
        click.option("--precision", type=click.Choice(PRECISIONS), default=default_of(TrainConfig, "precision")),
        click.option("--num-workers", type=click.IntRange(min=0), default=default_of(TrainConfig, "num_workers"),
                     help="DataLoader workers."),
        click.option("--head", type=click.Choice(HEADS), default=default_of(TrainConfig, "head"),
                     help="CNN head (net2-net4): the study's flatten, or gap."),
        click.option("--log-model/--no-log-model", default=default_of(TrainConfig, "log_model"),
                     help="Log the trained model to MLflow."),
        click.option("--gan-run-id", default=default_of(TrainConfig, "gan_run_id"), help="net6 only: the finished `gan` run whose generated set to use "
                     "[default: a finished gan run with matching settings, else train one first].", show_default=False),
    ]
    fn = wavegan_options("gan-", note="net6 only: ")(fn)
    for opt in reversed(opts[1:]):
        fn = opt(fn)
    return feature_options(opts[0](split_options(TrainConfig)(fn)))


def _train_config(net, data_dir, image_source, image_size, cache_dir, jobs, early_stopping, **kw) -> TrainConfig:
    kw["early_stopping"] = {"auto": None, "on": True, "off": False}[early_stopping]
    gan = _wavegan_config(kw, "gan_")
    if kw.get("gan_run_id") in ("none", "None"):  # MLproject's way of saying "not given"
        kw["gan_run_id"] = ""
    return TrainConfig(net=net, data_dir=data_dir, features=FeatureConfig(image_size=image_size, image_source=image_source),
                       cache_dir=cache_dir, jobs=jobs, gan=gan, **kw)


@main.command()
@train_options
@system_metrics_option(False)
@tracking_options
@_one_line_errors
def train(tracking_uri, experiment, system_metrics, **kw):
    """Train one net from the registry and log the run to MLflow."""
    from genre_models.tracking.setup import setup_tracking
    from genre_models.workflow.get_or_run import train_net

    cfg = _train_config(**kw)
    setup_tracking(tracking_uri, experiment, end_orphans=True)
    res = train_net(cfg, _logger(system_metrics=system_metrics))
    m = res.metrics
    if get_net(res.config.net).uses_gan:
        click.echo(f"{res.config.net}: trained on {m['n_train']} segments = {m['n_train_real']} real + "
                   f"{m['n_generated']} generated (gan run {res.tags.get('gan_run_id') or 'untracked'})")
    click.echo(f"{res.config.net}: test_accuracy {m['test_accuracy']:.4f}  test_track_accuracy {m['test_track_accuracy']:.4f}  "
               f"macro_f1 {m['test_macro_f1']:.4f}  best_epoch {m['best_epoch']}  stopped_epoch {m['stopped_epoch']}  "
               f"({m['train_time_s']:.1f} s, {m['samples_per_sec']:.0f} samples/s)")
    click.echo(f"MLflow run {res.run_id}")


@main.command()
@feature_options
@wavegan_options()
@split_options(GanConfig, "The GAN learns from this split's training part only.")
@click.option("--device", type=click.Choice(DEVICES), default=default_of(GanConfig, "device"))
@click.option("--log-every", type=int, default=default_of(GanConfig, "log_every"),
              help="Log losses and gradient penalty every N steps.")
@click.option("--preview-every", type=int, default=default_of(GanConfig, "preview_every"),
              help="Log one fixed-z WAV per genre every K steps.")
@click.option("--checkpoint-every", type=int, default=default_of(GanConfig, "checkpoint_every"),
              help="Checkpoint G, D and both optimizers every N steps.")
@click.option("--quality-epochs", type=int, default=default_of(GanConfig, "quality_epochs"),
              help="Epoch cap for the real-data net that scores the clips.")
@click.option("--fresh", is_flag=True, help="Ignore a checkpoint with the same settings and start from step 0.")
@click.option("--log-model/--no-log-model", default=default_of(GanConfig, "log_model"),
              help="Log the generator as an MLflow model.")
@system_metrics_option(False)
@tracking_options
@_one_line_errors
def gan(data_dir, image_source, image_size, cache_dir, jobs, split, seed, fold, folds, device, log_every, preview_every,
        checkpoint_every, quality_epochs, fresh, log_model, system_metrics, tracking_uri, experiment, **kw):
    """Train a WaveGAN on the training split's audio, generate a labelled set, and score it with a real-data net5.

    Re-running the same command resumes from the last checkpoint, and reuses the generated set."""
    from genre_models.tracking.setup import setup_tracking
    from genre_models.workflow.get_or_run import run_gan

    cfg = GanConfig(data_dir=data_dir, gan=_wavegan_config(kw), split=split, seed=seed, fold=fold, folds=folds, device=device,
                    features=FeatureConfig(image_size=image_size, image_source=image_source), cache_dir=cache_dir,
                    jobs=jobs, log_every=log_every, preview_every=preview_every, checkpoint_every=checkpoint_every,
                    quality_epochs=quality_epochs, log_model=log_model)
    setup_tracking(tracking_uri, experiment, end_orphans=True)
    res = run_gan(cfg, _logger(system_metrics=system_metrics), fresh=fresh)
    t = res.training
    click.echo(f"wavegan {cfg.gan.mode} d={cfg.gan.d}: {t.step} steps ({'resumed from step %d' % t.resumed_from if t.resumed_from else 'fresh'}, "
               f"{t.seconds:.1f} s) on {res.n_real} real training segments")
    click.echo(f"generated {len(res.generated)} clips ({cfg.gan.per_genre} per genre) in {res.generated.path}")
    click.echo(f"quality: a real-data net5 recognises {res.quality['gen_quality_accuracy']:.3f} of them (chance 0.100)")
    click.echo(f"MLflow run {res.run_id}")


@main.command()
@click.option("--backend-store-uri", default="sqlite:///mlflow.db", help="Run store: sqlite:///FILE or postgresql://...")
@click.option("--artifacts-destination", default="mlartifacts", help="Where the server writes artifacts (a folder, or s3://...).")
@click.option("--host", default="127.0.0.1", help="Interface to listen on; 0.0.0.0 lets other machines in (use --auth then).")
@click.option("--port", type=int, default=5000)
@click.option("--workers", type=int, default=4, help="Server worker processes.")
@click.option("--allowed-hosts", default="", help="Host headers to accept besides localhost and private IPs: the name "
                                                 "workers use, e.g. tracker,tracker:5000 [default: MLflow's].",
              show_default=False)
@click.option("--auth", is_flag=True, help="MLflow's basic-auth app: every request needs the admin account (or a user "
                                           "it adds), from MLFLOW_TRACKING_USERNAME/PASSWORD or --auth-file.")
@click.option("--auth-file", type=click.Path(dir_okay=False), default=None,
              help="With --auth: a file holding username:password, readable by its owner only (never the password "
                   "on the command line).")
@click.option("--default-permission", type=click.Choice(["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"]), default="READ",
              help="With --auth: what every user the admin adds may do with an experiment nobody granted them "
                   "(MLflow's READ lets every user read every experiment; NO_PERMISSIONS, then grant per experiment).")
@click.option("--background", is_flag=True, help="Return once the server answers; it runs on, logging to "
                                                 "mlflow-server.log (pid in mlflow-server-PORT.pid).")
@click.option("--stop", is_flag=True, help="Stop the --background server on --port started from this folder.")
@_one_line_errors
def server(backend_store_uri, artifacts_destination, host, port, workers, allowed_hosts, auth, auth_file, default_permission,
           background, stop):
    """Run an MLflow tracking server with artifact proxying, for sweeps whose workers are on other
    machines. In the foreground this process becomes the server (stop it with Ctrl-C)."""
    from pathlib import Path

    from genre_models.tracking.server import credentials, exposure_warning, stop_process_group

    pid_file = Path(f"mlflow-server-{port}.pid")
    if stop:
        if not pid_file.is_file():
            raise CliError(f"{pid_file.resolve()}: no such file; no --background server on port {port} was started here")
        pid = int(pid_file.read_text().split()[0])
        found = stop_process_group(pid)
        pid_file.unlink()
        click.echo(f"stopped the MLflow server on port {port} (pid {pid})" if found else
                   f"the MLflow server on port {port} (pid {pid}) was not running")
        return
    if auth_file and not auth:
        raise CliError("--auth-file needs --auth")
    if default_permission != "READ" and not auth:
        raise CliError("--default-permission needs --auth")
    creds = credentials(auth_file) if auth else None
    warning = exposure_warning(host, auth)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    _serve(backend_store_uri, artifacts_destination, host, port, workers, allowed_hosts, creds, default_permission,
           background, pid_file)


def _serve(backend_store_uri, artifacts_destination, host, port, workers, allowed_hosts, creds, default_permission,
           background, pid_file):
    from pathlib import Path

    from genre_models.tracking.server import AUTH_FOLDER, LocalServer, auth_environment, private_store, server_command

    everywhere = host in ("0.0.0.0", "::")
    shown = "<this machine's name or address>" if everywhere else host
    uri = f"http://{shown}:{port}"
    where = (f"listening on {host}:{port} (every interface: reach it as {uri}; from here http://127.0.0.1:{port})"
             if everywhere else f"listening on {uri}")
    secured = (f"; basic auth on (admin {creds.username}; users and secret in {Path(AUTH_FOLDER).resolve()})"
               if creds else "")
    if background:
        srv = LocalServer(backend_store_uri, Path.cwd(), port, host, workers, artifacts_destination, allowed_hosts,
                          creds, default_permission).__enter__()
        pid_file.write_text(f"{srv.proc.pid}\n")
        click.echo(f"MLflow server {where} (pid {srv.proc.pid}, log {srv.log_path}){secured}; point sweeps at it with "
                   f"--tracking-uri {uri}; stop it with: benchmark server --stop --port {port}")
        return
    cmd = server_command(backend_store_uri, artifacts_destination, host, port, workers, allowed_hosts, creds is not None)
    click.echo(f"MLflow server {where}: runs in {backend_store_uri}, artifacts in {cmd[-1]}{secured}; "
               f"point sweeps at it with --tracking-uri {uri}")
    sys.stdout.flush()
    private_store(backend_store_uri, artifacts_destination)
    env = {**os.environ, **(auth_environment(creds, Path(AUTH_FOLDER), default_permission) if creds else {})}
    os.umask(0o077)  # what the server writes later (SQLite's journal, artifacts) is its owner's alone
    os.execve(cmd[0], cmd, env)


def _csv(choices):
    def parse(ctx, param, value):
        items = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [v for v in items if v not in choices]
        if bad or not items:
            raise click.BadParameter(f"{', '.join(bad) or 'nothing'} not in {', '.join(choices)}")
        return items
    return parse


@main.command()
@click.option("--data-dir", default="demo-data", type=click.Path(), help="GTZAN folder (with --demo: where the demo data goes).")
@click.option("--demo", is_flag=True, help="Synthesise the demo data if absent, run the demo grid, then write the report.")
@click.option("--grid", type=click.Choice(list(GRIDS)), default=None,
              help="Named grid [default: study; demo with --demo].", show_default=False)
@click.option("--nets", default=",".join(default_of(SweepConfig, "nets")), callback=_nets,
              help="Comma-separated nets: registry nets, installed plugins' names, or package.module:factory.")
@click.option("--seeds", type=click.IntRange(1, MAX_SEEDS), default=default_of(SweepConfig, "seeds"), help="Seeds 0..N-1 for every grid point.")
@click.option("--splits", default=",".join(default_of(SweepConfig, "splits")), callback=_csv(list(SPLITS)),
              help="Comma-separated splits (kfold: every point once per fold).")
@click.option("--folds", type=click.IntRange(min=3), default=default_of(SweepConfig, "folds"),
              help="--splits kfold: the number of folds.")
@click.option("--max-epochs", type=click.IntRange(min=1), default=None, help="Cap every net's epochs (and early-stopping maximum).")
@click.option("--jobs", type=click.IntRange(min=1), default=default_of(SweepConfig, "jobs"), help="Grid points run at once (worker processes).")
@click.option("--device", type=click.Choice(DEVICES), default=default_of(SweepConfig, "device"))
@click.option("--precision", type=click.Choice(PRECISIONS), default=default_of(SweepConfig, "precision"))
@click.option("--cache-dir", default=default_cache_dir, show_default="$GENRE_BENCH_CACHE or ~/.cache/genre-bench")
@click.option("--preprocess-jobs", type=click.IntRange(min=0), default=default_of(SweepConfig, "preprocess_jobs"),
              help="Feature-extraction processes (0: one per core).")
@click.option("--executor", type=click.Choice(EXECUTORS), default=default_of(SweepConfig, "executor"),
              help="local: this process (or --jobs workers); ray: one Ray task per grid point (pip install 'genre-bench[ray]').")
@click.option("--ray-address", default="", show_default=False,
              help="Ray cluster HOST:PORT [default: Ray's rule: $RAY_ADDRESS, else the cluster last started here, "
                   "else a new local one].")
@click.option("--cpus-per-run", type=float, default=default_of(SweepConfig, "cpus_per_run"), help="Ray: CPUs (and torch threads) each grid point reserves.")
@click.option("--gpus-per-run", type=float, default=default_of(SweepConfig, "gpus_per_run"), help="Ray: GPU fraction each grid point reserves (0.25: four share one).")
@click.option("--retries", type=int, default=default_of(SweepConfig, "retries"), help="Ray: re-runs of a grid point whose worker died.")
@click.option("--data-access", type=click.Choice(DATA_ACCESS), default=default_of(SweepConfig, "data_access"),
              help="shared: workers read --data-dir; artifacts: workers download a features run (auto: artifacts under ray).")
@system_metrics_option(default_of(SweepConfig, "system_metrics"))
@click.option("--register/--no-register", default=default_of(SweepConfig, "register"),
              help="Register the best run per net and split (chosen on validation) as models:/genre-bench-<net>@<split>.")
@click.option("--max-hours", type=click.FloatRange(min=0, min_open=True), default=None, show_default=False,
              help="Stop before running anything when the projected wall time is longer.")
@click.option("--dry-run", is_flag=True, help="Print the plan (points, dependencies, what the store holds) and its "
                                              "projected wall time here, then exit: nothing is run or created.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the plan and projection as JSON.")
@tracking_options
@_one_line_errors
def sweep(data_dir, demo, grid, nets, seeds, splits, folds, max_epochs, jobs, device, precision, cache_dir, preprocess_jobs,
          executor, ray_address, cpus_per_run, gpus_per_run, retries, data_access, system_metrics, register, max_hours,
          dry_run, as_json, tracking_uri, experiment):
    """Run the study's grid (nets x epochs x splits x seeds, and the GAN net6 needs) as one parent MLflow run.

    Re-running the same command skips grid points that already have a FINISHED run."""
    from genre_models.data.synth import ensure_demo_data
    from genre_models.sweep.driver import run_sweep
    from genre_models.sweep.grid import get_grid

    grid = grid or ("demo" if demo else default_of(SweepConfig, "grid"))
    if as_json and not dry_run:
        raise CliError("--json goes with --dry-run")
    if demo and not dry_run and ensure_demo_data(data_dir):
        click.echo(f"wrote the synthetic demo data to {data_dir}")
    cfg = SweepConfig(data_dir=data_dir, grid=grid, nets=nets, seeds=seeds, splits=splits, folds=folds, max_epochs=max_epochs, jobs=jobs,
                      device=device, precision=precision, cache_dir=cache_dir, preprocess_jobs=preprocess_jobs,
                      executor=executor, ray_address=ray_address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                      retries=retries, data_access=data_access, system_metrics=system_metrics, register=register,
                      max_hours=max_hours)
    if dry_run:
        _dry_run(cfg, tracking_uri, experiment, as_json, demo)
        return
    click.echo(f"grid {grid}: {get_grid(grid).description}")
    tty = sys.stderr.isatty() and not os.environ.get("CI")

    def echo(line: str, final: bool = False) -> None:
        if final:
            if tty:
                click.echo("", err=True)
            click.echo(line)
        elif tty:
            click.echo(f"\r{line:<110}", nl=False, err=True)
        else:
            click.echo(line, err=True)

    res = run_sweep(cfg, tracking_uri, experiment, echo=echo)
    for label, out in res.outcomes.items():
        if out["status"] == "FAILED":
            click.echo(f"  FAILED {label}: {out.get('error', '')}")
    if demo:
        from genre_models.stages.report import write_report
        from genre_models.tracking.setup import experiment_name

        rep = write_report(experiment_name(experiment), out=None, tracking_uri=tracking_uri, logger=_logger())
        click.echo(f"report: {rep.path} (and {rep.html}); its run {rep.run_id}")
    if res.failed:
        raise SystemExit(1)


def _dry_run(cfg, tracking_uri, experiment, as_json: bool, demo: bool) -> None:
    from genre_models.sweep.plan import dry_run
    from genre_models.tracking.setup import experiment_name

    if demo and not os.path.isdir(cfg.data_dir):  # the demo data is written on the first real run
        raise CliError(f"{cfg.data_dir}: no demo data yet; `benchmark synth --out {cfg.data_dir}` writes it "
                       "(or run the sweep, which does)")
    plan = dry_run(cfg, tracking_uri, experiment_name(experiment))
    click.echo(json.dumps(plan.as_dict(), indent=2, default=str) if as_json else "\n".join(plan.lines()))


@main.command()
@click.option("--out", default=None, type=click.Path(), help="Markdown file [default: reports/<experiment>/report.md]; "
              "its HTML twin, tables (CSV, LaTeX) and figures go beside it.", show_default=False)
@click.option("--no-figures", is_flag=True, help="Tables only: skip the PNGs (headline, confusion matrices, curves).")
@click.option("--force", is_flag=True, help="Replace the file --out names if it exists (the default place is always replaced).")
@tracking_options
@_one_line_errors
def report(out, no_figures, force, tracking_uri, experiment):
    """Write the study's tables (mean and 95% interval over seeds, beside the published numbers), figures,
    CSV and LaTeX tables and an HTML page, from the tracking store."""
    from genre_models.stages.report import write_report
    from genre_models.tracking.setup import experiment_name
    from genre_models.util import check_out

    if out:
        check_out(out, force, create=True)  # the report makes its folder
    rep = write_report(experiment_name(experiment), out=out, tracking_uri=tracking_uri, figures=not no_figures,
                       logger=_logger())
    click.echo(rep.text)
    click.echo(f"\nwrote {rep.path} ({rep.n_runs} runs), {rep.html} and {len(rep.tables)} table files; "
               f"MLflow run {rep.run_id} keeps the report and its claims tables")


@main.command()
@click.option("--split", type=click.Choice(SPLITS), default=None,
              help="The protocol's split [default: the sweep's busiest with --experiment, else kfold].")
@click.option("--tracks", type=click.IntRange(min=20), default=None, help="Tracks in the data set [default: 150, or the sweep's].")
@click.option("--folds", type=click.IntRange(min=3), default=None, help="Folds of --split kfold [default: 5, or the sweep's].")
@click.option("--seeds", type=click.IntRange(min=1, max=MAX_SEEDS), default=None, help="Seeds [default: 3, or the sweep's].")
@click.option("--segments", type=click.IntRange(min=1, max=200), default=None,
              help="Segments per track of a segment-scored net [default: 10, or the sweep's].")
@click.option("--sims", type=click.IntRange(min=10, max=100000), default=500, help="Simulated sweeps per scenario.")
@click.option("--alpha", type=click.FloatRange(0.001, 0.5), default=0.05, help="The level tested.")
@click.option("--margin", type=click.FloatRange(0.001, 0.5), default=0.02,
              help="The margin of 'steady' (TOST) and 'no better than' (non-superiority), in accuracy.")
@click.option("--scenarios", default="all", help="Comma-separated scenario names, or all: training-noise, track-lean, "
              "few-discordant, and each again with repeated recordings (training-noise+repeats, ...).")
@click.option("--jobs", type=click.IntRange(min=0), default=0, help="Processes (0: one per usable core).")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, help="The simulation's seed: the same seed, the same rates.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the rates as JSON: a list of {scenario, test, rejection_rate, interval, sims, ...}.")
@click.option("--force", is_flag=True, help="Replace the file --json names if it exists.")
@click.option("--tracking-uri", default=None, help="MLflow store [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db].")
@click.option("--experiment", default=None,
              help="A finished sweep's experiment: take the shape and the observed spreads from it (and log there); "
                   "options given still apply. Without it the run goes to the experiment genre-bench-calibration.")
@_one_line_errors
def calibrate(split, tracks, folds, seeds, segments, sims, alpha, margin, scenarios, jobs, seed, json_out, force,
              tracking_uri, experiment):
    """Do the report's tests keep their level on a protocol of this shape? Simulates null sweeps (no true
    difference; named noise scenarios) through the report's own verdicts, and prints each test's rejection rate
    with its 95% interval; exit 1 if a test that decides a verdict rejects above its level."""
    import dataclasses

    from genre_models.reporting.calibration import SCENARIOS, CalibrationConfig, Shape
    from genre_models.stages.calibrate import EXPERIMENT, config_from_experiment, run_calibration
    from genre_models.tracking.setup import setup_tracking
    from genre_models.util import check_out, progress, usable_cores

    if json_out:
        check_out(json_out, force, "--json")
    names = tuple(SCENARIOS) if scenarios.strip() == "all" else tuple(v.strip() for v in scenarios.split(",") if v.strip())
    kw = dict(scenarios=names, sims=sims, alpha=alpha, margin=margin, seed=seed)
    if experiment:
        cfg, source = config_from_experiment(experiment, split, tracking_uri, **kw)
    else:
        cfg, source = CalibrationConfig(shape=Shape(split=split or "kfold"), **kw), "the options given"
    given = {k: v for k, v in dict(tracks=tracks, folds=folds, seeds=seeds, segments=segments).items() if v is not None}
    cfg = dataclasses.replace(cfg, shape=dataclasses.replace(cfg.shape, **given))
    setup_tracking(tracking_uri, experiment or EXPERIMENT)
    bar = progress(total=sims * len(names), desc="calibrate", unit="sweep")
    res = run_calibration(cfg, jobs=usable_cores() if jobs == 0 else jobs, source=source, json_out=json_out,
                          logger=_logger(), progress=lambda done, total: bar.update(done - bar.n))
    bar.close()
    click.echo(res.table())
    click.echo(f"\n{res.summary()}" + (f"; wrote {res.json_path}" if res.json_path else "") + f"; MLflow run {res.run_id}")
    if res.failing:
        raise SystemExit(1)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--model-uri", required=True,
              help="models:/genre-bench-<net>@<split>, models:/<name>/<version>, runs:/<run_id>/model, or a folder "
                   "holding a saved net (spec.json and its weights).")
@click.option("--top", type=click.IntRange(min=1), default=3, help="How many genres to print per clip (1-10).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, show_default=False,
              help="Also write a CSV: one row per clip, scored (every genre's probability) or skipped (why).")
@click.option("--force", is_flag=True, help="Replace the file --out names if it exists.")
@click.option("--jobs", type=click.IntRange(min=0), default=0, help="Decoding processes (0: one per core).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of one line per clip.")
@tracking_options
@_one_line_errors
def predict(paths, model_uri, top, out, force, jobs, as_json, tracking_uri, experiment):
    """Top genres for your own clips (files or folders; any format librosa reads), with the trained net's
    preprocessing. The net is loaded once and read as data (its card and plain weights, never a pickle)."""
    from genre_models.stages.predict import predict as run
    from genre_models.util import check_out

    if out:
        check_out(out, force)  # before any clip is scored
    res = run(list(paths), model_uri, tracking_uri=tracking_uri, jobs=jobs)
    if out:
        res.write_csv(out)
    if as_json:
        click.echo(json.dumps(res.as_dict(top), indent=2))
    else:
        for c in res.clips:
            click.echo(f"{c.file}: " + ", ".join(f"{g} {p:.3f}" for g, p in c.top(top)) + f"  ({c.n_inputs} inputs)")
        for f, why in res.skipped:
            click.echo(f"skipped {f}: {why}")
        if res.clips:
            click.echo(f"{res.net} ({res.input_kind} input, {model_uri}): {len(res.clips)} clip(s) scored, "
                       f"{len(res.skipped)} skipped, in {res.seconds:.1f} s" + (f"; wrote {out}" if out else ""))
    if not res.clips:
        raise CliError(f"no clip could be scored ({len(res.skipped)} skipped, each listed above)")


@main.command("nets")
def nets_cmd():
    """List the nets: the registry's (the study's), then installed plugins, with their origin."""
    from genre_models.models.plugins import installed

    def line(spec) -> str:
        if spec.family == "classical":
            how = f"{spec.optimizer}, fitted once, hyper-parameters chosen on validation"
        else:
            es = f"early stopping (patience {spec.patience}, max {spec.epochs})" if spec.early_stopping else f"{spec.epochs} epochs"
            how = f"{spec.optimizer} lr={spec.lr:g}  {es}"
        return f"{spec.name}  {spec.input_kind:<5}  {how}  [{spec.origin}]  -- {spec.summary}"

    for spec in NETS.values():
        click.echo(line(spec))
    for name, spec, problem in installed(tuple(NETS)):
        click.echo(line(spec) if spec is not None else f"{name}  broken plugin: {problem}")


@main.group()
def perf():
    """Benchmarks: speed figures as ratios measured side by side in one run."""


@perf.command("preprocess")
@click.option("--data-dir", required=True, type=click.Path())
@click.option("--limit", type=int, default=0, help="Use only the first N files (0: all).")
@click.option("--jobs", type=int, default=0)
@click.option("--repeat-clips", type=click.IntRange(min=2), default=1000, help="Clips in the timed all-pairs repeat search.")
@_one_line_errors
def perf_preprocess(data_dir, limit, jobs, repeat_clips):
    """The pipeline against a naive per-file, per-segment librosa loop on the same files, and the repeat search on 1000 clips."""
    from benchmark.perf.preprocess import bench_preprocess

    r = bench_preprocess(data_dir, limit=limit, jobs=jobs, repeat_clips=repeat_clips)
    click.echo(json.dumps(r, indent=2))


@perf.command("train")
@click.option("--net", required=True, callback=_torch_net, help=NET_HELP)
@click.option("--data-dir", default=None, type=click.Path(), help="Real or synthetic data [default: random tensors].")
@click.option("--batches", type=int, default=20, help="Timed batches per loop.")
@click.option("--batch-size", type=int, default=32)
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32")
@click.option("--head", type=click.Choice(HEADS), default="flatten")
@click.option("--image-size", type=int, default=180)
@click.option("--device", type=click.Choice(DEVICES), default="auto")
@_one_line_errors
def perf_train(**kw):
    """The suite's training loop (with data loading and logging) against a bare PyTorch loop."""
    from benchmark.perf.train import bench_train

    click.echo(json.dumps(bench_train(**kw), indent=2))


@perf.command("study")
@click.option("--grid", type=click.Choice(list(GRIDS)), default="study")
@click.option("--nets", default=",".join(default_of(SweepConfig, "nets")), callback=_nets, help="Comma-separated nets.")
@click.option("--seeds", type=click.IntRange(1, MAX_SEEDS), default=default_of(SweepConfig, "seeds"))
@click.option("--splits", default=",".join(default_of(SweepConfig, "splits")), callback=_csv(list(SPLITS)))
@click.option("--folds", type=click.IntRange(min=3), default=default_of(SweepConfig, "folds"))
@click.option("--jobs", type=click.IntRange(min=1), default=1, help="Points at once in the projection (also shows --jobs 1).")
@click.option("--device", type=click.Choice(DEVICES), default="auto")
@click.option("--precision", type=click.Choice(PRECISIONS), default=default_of(SweepConfig, "precision"))
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=3.0, help="Timing per measurement, after a warm-up.")
@click.option("--data-dir", default=None, type=click.Path(), help="Data to size the projection and time preprocessing on "
                                                                  "[default: GTZAN's size, generated clips].")
@click.option("--track/--no-track", "record", default=True, help="Log the projection as an MLflow run (stage=perf).")
@click.option("--json", "as_json", is_flag=True, help="Print every rate and projection as JSON instead of the table.")
@tracking_options
@_one_line_errors
def perf_study(record, as_json, tracking_uri, experiment, **kw):
    """Every stage of a grid measured at its full size on this device, and the grid's projected wall time under --jobs."""
    from benchmark.perf.study import bench_study

    logger = None
    if record:
        from genre_models.tracking.setup import setup_tracking

        setup_tracking(tracking_uri, experiment)
        logger = _logger()
    out = bench_study(logger=logger, **kw)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"{out['grid']} grid on {out['device']} ({out['precision']}, {out['threads']} threads), {out['data']}:")
    click.echo("\n".join(out["table"]))
    if out.get("run_id"):
        click.echo(f"MLflow run {out['run_id']} (projection.json: every rate; --json prints it)")


@perf.command("predict")
@click.option("--net", default="net5", callback=_torch_net, help=NET_HELP)
@click.option("--clips", type=click.IntRange(min=2), default=100, help="Clips in the folder.")
@click.option("--seconds", type=click.FloatRange(min=1), default=30.0, help="Length of each generated clip.")
@click.option("--repeats", type=click.IntRange(min=1), default=2, help="Turns; each figure is the median.")
@_one_line_errors
def perf_predict(**kw):
    """`benchmark predict` on one clip and on a folder of many, each a fresh command, side by side."""
    from benchmark.perf.predict import bench_predict

    click.echo(json.dumps(bench_predict(**kw), indent=2))


@perf.command("report")
@click.option("--runs", type=click.IntRange(min=10), default=2000, help="Fabricated training runs in the experiment.")
@click.option("--figures/--no-figures", default=True, help="Time the report with its figures (as `benchmark report`).")
@click.option("--repeats", type=click.IntRange(min=1), default=2, help="Turns; each figure is the best.")
@_one_line_errors
def perf_report(**kw):
    """`benchmark report` on an experiment of fabricated runs, beside MLflow's own search of it."""
    from benchmark.perf.report import bench_report

    click.echo(json.dumps(bench_report(**kw), indent=2))


@perf.command("precision")
@click.option("--net", callback=_torch_net, default="net2", help=NET_HELP)
@click.option("--batches", type=click.IntRange(min=1), default=4)
@click.option("--batch-size", type=click.IntRange(min=1), default=32)
@click.option("--image-size", type=click.IntRange(min=8), default=180)
@click.option("--device", type=click.Choice(DEVICES), default="auto")
@click.option("--repeats", type=click.IntRange(min=1), default=3)
@_one_line_errors
def perf_precision(**kw):
    """bf16 against fp32 side by side on this device, and what --precision auto picks here."""
    from benchmark.perf.precision import bench_precision

    click.echo(json.dumps(bench_precision(**kw), indent=2))


@perf.command("contention")
@click.option("--net", type=click.Choice([n for n, s in NETS.items() if s.family == "torch"]), default="net5")
@click.option("--batches", type=click.IntRange(min=1), default=40, help="Timed batches per process.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32)
@click.option("--image-size", type=click.IntRange(min=8), default=180)
@click.option("--repeats", type=click.IntRange(min=1), default=2, help="Turns per round; each reports its best.")
@_one_line_errors
def perf_contention(**kw):
    """One training process alone, then two at once, with and without the thread budget: the pair's throughput over the single's."""
    from benchmark.perf.contention import bench_contention

    click.echo(json.dumps(bench_contention(**kw), indent=2))


@perf.command("startup")
@click.option("--repeats", type=click.IntRange(min=1), default=5)
@_one_line_errors
def perf_startup(**kw):
    """How long `benchmark --help` and an argument error take, beside Python's own start and `import torch`."""
    from benchmark.perf.startup import bench_startup

    click.echo(json.dumps(bench_startup(**kw), indent=2))


@perf.command("gan")
@click.option("--d", type=int, default=8, help="Model size for the fp32/bf16 comparison.")
@click.option("--batch-size", type=int, default=16)
@click.option("--steps", type=int, default=3, help="Timed G+D steps per precision and repeat.")
@click.option("--device", type=click.Choice(DEVICES), default="auto")
@click.option("--paper-probe/--no-paper-probe", default=True, help="Also time the paper-size model (d=64) and extrapolate.")
@click.option("--probe-batch", type=int, default=2, help="Batch for the d=64 probe, scaled linearly to 64 (use 64 on a GPU).")
@click.option("--study-steps", type=int, default=20000, help="Steps for the study-scale time estimate.")
@_one_line_errors
def perf_gan(**kw):
    """WaveGAN G+D steps/s in fp32 and bf16, and an estimate for the paper-size model at the study's scale."""
    from benchmark.perf.gan import bench_gan

    click.echo(json.dumps(bench_gan(**kw), indent=2))


@perf.command("sweep")
@click.option("--data-dir", default="demo-data", type=click.Path(), help="Data for the tiny sweep (the demo data is written if absent).")
@click.option("--nets", default="net1,net5", callback=_nets, help="Comma-separated nets.")
@click.option("--grid", type=click.Choice(list(GRIDS)), default="demo", show_default=True)
@click.option("--splits", default="track", callback=_csv(list(SPLITS)), help="Comma-separated splits [default: track].")
@click.option("--seeds", type=click.IntRange(min=1), default=3)
@click.option("--max-epochs", type=click.IntRange(min=1), default=2, show_default=True,
              help="Cap every epoch budget (the fast grid's own cap is 50).")
@click.option("--repeats", type=click.IntRange(min=1), default=2, help="Turns per way; each reports its fastest.")
@click.option("--jobs", type=click.IntRange(min=2), default=2, help="Worker processes for the local executor.")
@click.option("--ray/--no-ray", default=True, help="Also time the Ray executor (starts a head unless --ray-address).")
@click.option("--ray-address", default="", help="An existing Ray cluster [default: start a head on 127.0.0.1].",
              show_default=False)
@click.option("--ray-cpus", type=int, default=0, help="CPUs of the head started here (0: all cores).")
@_one_line_errors
def perf_sweep(data_dir, **kw):
    """The same tiny sweep through the local executor (1 and --jobs workers) and through Ray: the overhead ratio."""
    from benchmark.perf.sweep import bench_executors
    from genre_models.data.synth import ensure_demo_data

    ensure_demo_data(data_dir)
    click.echo(json.dumps(bench_executors(data_dir, **kw), indent=2))


if __name__ == "__main__":
    main()
