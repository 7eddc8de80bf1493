"""Renders ``MLproject`` from the registry, so the entry points can never drift from ``NETS``.

``python -m genre_models.mlproject > MLproject`` regenerates it; a test checks it is current.
Commands call ``python -m benchmark`` so that ``mlflow run`` works from a checkout without
installing the package. Relative ``data_dir`` values resolve against the project folder,
which is where ``mlflow run .`` runs the command.
"""

from __future__ import annotations

from genre_models.config import GanConfig, WaveGanConfig
from genre_models.models import NETS, NetSpec

HEADER = """\
# Generated from genre_models.models.NETS by `python -m genre_models.mlproject > MLproject`.
# Do not edit by hand: tests/test_mlproject.py fails when this file and the registry disagree.
name: genre-bench

conda_env: conda.yaml
"""

FEATURE_PARAMS = [
    ("data_dir", "path", "demo-data"),
    ("image_source", "string", "auto"),
    ("image_size", "int", 180),
    ("jobs", "int", 0),
]


def train_params(spec: NetSpec) -> list[tuple[str, str, object]]:
    """(name, MLflow type, default) for one net's entry point; defaults equal the CLI's resolved ones."""
    return FEATURE_PARAMS + [
        ("epochs", "int", spec.epochs),
        ("early_stopping", "string", "auto"),
        ("patience", "int", spec.patience),
        ("min_delta", "float", 0.0),
        ("batch_size", "int", spec.batch_size),
        ("lr", "float", spec.lr),
        ("seed", "int", 0),
        ("split", "string", "track"),
        ("device", "string", "auto"),
        ("precision", "string", "fp32"),
        ("num_workers", "int", 0),
        ("head", "string", "flatten"),
    ] + (gan_params("gan_") + [("gan_run_id", "string", "none")] if spec.uses_gan else [])


#: The WaveGAN settings an entry point exposes (the rest keep the paper's values).
GAN_FIELDS = ("steps", "batch_size", "d", "mode", "per_genre", "precision")
_MLFLOW_TYPES = {int: "int", float: "float", str: "string"}


def gan_params(prefix: str = "") -> list[tuple[str, str, object]]:
    defaults = WaveGanConfig()
    return [(f"{prefix}{name}", _MLFLOW_TYPES[type(getattr(defaults, name))], getattr(defaults, name)) for name in GAN_FIELDS]


def gan_entry_params() -> list[tuple[str, str, object]]:
    run = GanConfig(data_dir="")
    return FEATURE_PARAMS + gan_params() + [
        ("split", "string", "track"),
        ("seed", "int", 0),
        ("device", "string", "auto"),
        ("log_every", "int", run.log_every),
        ("preview_every", "int", run.preview_every),
        ("checkpoint_every", "int", run.checkpoint_every),
        ("quality_epochs", "int", run.quality_epochs),
    ]


PREPROCESS_PARAMS = FEATURE_PARAMS + [("split", "string", "track"), ("seed", "int", 0)]


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
    return HEADER + "\nentry_points:\n" + "\n\n".join(entries) + "\n"


if __name__ == "__main__":
    print(render(), end="")
