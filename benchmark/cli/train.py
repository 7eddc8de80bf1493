"""``benchmark train`` and ``benchmark gan``: one net, or the WaveGAN, as one MLflow run."""

from __future__ import annotations

import click

from benchmark.cli.options import (
    NET_HELP, check_net, feature_options, one_line_errors, run_logger, split_options, system_metrics_option,
    tracking_options,
)
from genre_models.config import (
    DEVICES, GAN_MODES, HEADS, PRECISIONS, FeatureConfig, GanConfig, TrainConfig, WaveGanConfig, default_of,
)
from genre_models.models.registry import get_net

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
        click.option("--net", required=True, callback=check_net, help=NET_HELP),
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


def train_config(net, data_dir, image_source, image_size, cache_dir, jobs, early_stopping, **kw) -> TrainConfig:
    kw["early_stopping"] = {"auto": None, "on": True, "off": False}[early_stopping]
    gan = _wavegan_config(kw, "gan_")
    if kw.get("gan_run_id") in ("none", "None"):  # MLproject's way of saying "not given"
        kw["gan_run_id"] = ""
    return TrainConfig(net=net, data_dir=data_dir, features=FeatureConfig(image_size=image_size, image_source=image_source),
                       cache_dir=cache_dir, jobs=jobs, gan=gan, **kw)


@click.command()
@train_options
@system_metrics_option(False)
@tracking_options
@one_line_errors
def train(tracking_uri, experiment, system_metrics, **kw):
    """Train one net from the registry and log the run to MLflow."""
    from genre_models.tracking.setup import setup_tracking
    from genre_models.workflow.get_or_run import train_net

    cfg = train_config(**kw)
    setup_tracking(tracking_uri, experiment, end_orphans=True)
    res = train_net(cfg, run_logger(system_metrics=system_metrics))
    m = res.metrics
    if get_net(res.config.net).uses_gan:
        click.echo(f"{res.config.net}: trained on {m['n_train']} segments = {m['n_train_real']} real + "
                   f"{m['n_generated']} generated (gan run {res.tags.get('gan_run_id') or 'untracked'})")
    click.echo(f"{res.config.net}: test_accuracy {m['test_accuracy']:.4f}  test_track_accuracy {m['test_track_accuracy']:.4f}  "
               f"macro_f1 {m['test_macro_f1']:.4f}  best_epoch {m['best_epoch']}  stopped_epoch {m['stopped_epoch']}  "
               f"({m['train_time_s']:.1f} s, {m['samples_per_sec']:.0f} samples/s)")
    click.echo(f"MLflow run {res.run_id}")


@click.command()
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
@one_line_errors
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
    res = run_gan(cfg, run_logger(system_metrics=system_metrics), fresh=fresh)
    t = res.training
    click.echo(f"wavegan {cfg.gan.mode} d={cfg.gan.d}: {t.step} steps ({'resumed from step %d' % t.resumed_from if t.resumed_from else 'fresh'}, "
               f"{t.seconds:.1f} s) on {res.n_real} real training segments")
    click.echo(f"generated {len(res.generated)} clips ({cfg.gan.per_genre} per genre) in {res.generated.path}")
    click.echo(f"quality: a real-data net5 recognises {res.quality['gen_quality_accuracy']:.3f} of them (chance 0.100)")
    click.echo(f"MLflow run {res.run_id}")
