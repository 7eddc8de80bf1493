"""``benchmark synth`` and ``benchmark preprocess``: data written or turned into features."""

from __future__ import annotations

import click

from benchmark.cli.options import (
    CliError, feature_options, one_line_errors, run_logger, say, split_options, tracking_options,
)
from genre_models.config import DataConfig, FeatureConfig, SplitConfig, default_of
from genre_models.data.synth import SynthConfig


@click.command()
@click.option("--out", required=True, type=click.Path(), help="Folder to write (Kaggle layout).")
@click.option("--tracks-per-genre", type=int, default=default_of(SynthConfig, "tracks_per_genre"))
@click.option("--seconds", type=float, default=default_of(SynthConfig, "seconds"))
@click.option("--seed", type=int, default=default_of(SynthConfig, "seed"))
@click.option("--with-images", is_flag=True, help="Also write Kaggle-style PNGs to Data/images_original.")
@click.option("--repeats", type=click.IntRange(min=0), default=default_of(SynthConfig, "repeats"),
              help="Extra tracks that are altered copies of earlier ones (level, requantisation, shift, cut, lossy), as GTZAN has.")
@one_line_errors
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


@click.command()
@feature_options
@split_options(SplitConfig, "The split whose parts the run logs (the cache itself holds every split).")
@click.option("--force", is_flag=True, help="Recompute even when a matching cache exists.")
@click.option("--no-track", "no_log", is_flag=True, help="Do not log an MLflow run.")
@click.option("--publish", is_flag=True,
              help="Also log the feature cache as a features run, usable as --data-dir runs:/<id>/features on nodes "
                   "that cannot see the data.")
@click.option("--with-audio", is_flag=True, help="With --publish: ship every segment's audio too (the GAN needs it).")
@tracking_options
@one_line_errors
def preprocess(data_dir, image_source, image_size, cache_dir, jobs, split, seed, fold, folds, force, no_log, publish,
               with_audio, tracking_uri, experiment):
    """Decode, trim, segment and featurise a GTZAN folder into the cache; log the manifest."""
    from genre_models.data.summary import repeat_groups, split_counts
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
    res, run_id = run(cfg, split=split_cfg, logger=run_logger(not no_log), force=force,
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
        say(f"  skipped {line}")
    for line in res.noted:
        say(f"  kept {line}")
    groups = repeat_groups(res.store)
    click.echo(f"{counts['repeat_groups']} groups of repeated recordings ({counts['repeat_tracks']} tracks)")
    for line in groups:
        say(f"  repeats {line}")
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
