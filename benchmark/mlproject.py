"""Renders ``MLproject`` from the registry, so the entry points can never drift from ``NETS``.

``python -m benchmark.mlproject > MLproject`` regenerates it; a test checks it is current.
Every default comes from the config dataclasses or the net's spec, never restated here.
Commands call ``python -m benchmark`` so that ``mlflow run`` works from a checkout without
installing the package. Relative ``data_dir`` values resolve against the project folder,
which is where ``mlflow run .`` runs the command.
"""

from __future__ import annotations

from genre_models.config import DataConfig, FeatureConfig, GanConfig, TrainConfig, WaveGanConfig, default_of
from genre_models.models.registry import NETS, NetSpec

HEADER = """\
# Generated from genre_models.models.registry.NETS by `python -m benchmark.mlproject > MLproject`.
# Do not edit by hand: tests/test_mlproject.py fails when this file and the registry disagree.
name: genre-bench

conda_env: conda.yaml
"""

#: The demo data folder that ``benchmark sweep --demo`` writes: the entry points' default data.
DEMO_DATA_DIR = "demo-data"

FEATURE_PARAMS = [
    ("data_dir", "path", DEMO_DATA_DIR),
    ("image_source", "string", default_of(FeatureConfig, "image_source")),
    ("image_size", "int", default_of(FeatureConfig, "image_size")),
    ("jobs", "int", default_of(DataConfig, "jobs")),
]


def _run(cls: type, *names: str) -> list[tuple[str, str, object]]:
    """(name, MLflow type, default) for fields of a config class, defaults from the class."""
    return [(n, _MLFLOW_TYPES[type(default_of(cls, n))], default_of(cls, n)) for n in names]


def train_params(spec: NetSpec | None) -> list[tuple[str, str, object]]:
    """(name, MLflow type, default) for one net's entry point, defaults equal to the CLI's
    resolved ones; ``None``: the generic ``train`` entry point, whose net is a parameter and
    whose net-dependent settings default to ``auto`` (the net's own)."""
    def own(name: str, ptype: str, value) -> tuple[str, str, object]:
        return (name, ptype, value) if spec is not None else (name, "string", "auto")

    if spec is not None and spec.family == "classical":  # fitted once: no loop settings to give
        return FEATURE_PARAMS + _run(TrainConfig, "seed", "split", "fold", "folds")

    return ([("net", "string", "net5")] if spec is None else []) + FEATURE_PARAMS + [
        own("epochs", "int", spec and spec.epochs),
        ("early_stopping", "string", "auto"),
        own("patience", "int", spec and spec.patience),
        *_run(TrainConfig, "min_delta"),
        own("batch_size", "int", spec and spec.batch_size),
        own("lr", "float", spec and spec.lr),
        *_run(TrainConfig, "seed", "split", "fold", "folds", "device", "precision", "num_workers", "head"),
    ] + (gan_params("gan_") + [("gan_run_id", "string", "none")] if spec is not None and spec.uses_gan else [])


#: The WaveGAN settings an entry point exposes (the rest keep the paper's values).
GAN_FIELDS = ("steps", "batch_size", "d", "mode", "per_genre", "precision")
_MLFLOW_TYPES = {int: "int", float: "float", str: "string"}


def gan_params(prefix: str = "") -> list[tuple[str, str, object]]:
    defaults = WaveGanConfig()
    return [(f"{prefix}{name}", _MLFLOW_TYPES[type(getattr(defaults, name))], getattr(defaults, name)) for name in GAN_FIELDS]


def gan_entry_params() -> list[tuple[str, str, object]]:
    return FEATURE_PARAMS + gan_params() + _run(GanConfig, "split", "seed", "fold", "folds", "device", "log_every", "preview_every",
                                                "checkpoint_every", "quality_epochs")


PREPROCESS_PARAMS = FEATURE_PARAMS + _run(GanConfig, "split", "seed", "fold", "folds")


def _entry(name: str, params: list[tuple[str, str, object]], command: str) -> str:
    lines = [f"  {name}:", "    parameters:"]
    for pname, ptype, default in params:
        lines.append(f"      {pname}: {{type: {ptype}, default: {default!r}}}".replace("'", '"'))
    flags = " ".join(f"--{p.replace('_', '-')} {{{p}}}" for p, _, _ in params)
    lines.append(f'    command: "{command} {flags}"')
    return "\n".join(lines)


def render() -> str:
    entries = [_entry("preprocess", PREPROCESS_PARAMS, "python -m benchmark preprocess"),
               _entry("gan", gan_entry_params(), "python -m benchmark gan")]
    for spec in NETS.values():
        entries.append(_entry(spec.name, train_params(spec), f"python -m benchmark train --net {spec.name}"))
    # Any net, a plugin's too: ``mlflow run . -e train -P net=mynet`` (or net=package.module:factory).
    entries.append(_entry("train", train_params(None), "python -m benchmark train"))
    return HEADER + "\nentry_points:\n" + "\n\n".join(entries) + "\n"


if __name__ == "__main__":
    print(render(), end="")
