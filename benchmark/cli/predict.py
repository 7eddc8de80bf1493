"""``benchmark predict`` and ``benchmark nets``: a model scores clips; the nets on offer."""

from __future__ import annotations

import json

import click

from benchmark.cli.options import CliError, one_line_errors, say, tracking_options
from genre_models.models.registry import NETS


@click.command()
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
@one_line_errors
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
            say(f"{c.file}: " + ", ".join(f"{g} {p:.3f}" for g, p in c.top(top)) + f"  ({c.n_inputs} inputs)")
        for f, why in res.skipped:
            say(f"skipped {f}: {why}")
        if res.clips:
            click.echo(f"{res.net} ({res.input_kind} input, {model_uri}): {len(res.clips)} clip(s) scored, "
                       f"{len(res.skipped)} skipped, in {res.seconds:.1f} s" + (f"; wrote {out}" if out else ""))
    if not res.clips:
        raise CliError(f"no clip could be scored ({len(res.skipped)} skipped, each listed above)")


@click.command("nets")
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
