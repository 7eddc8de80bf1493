"""A trained net as data: a JSON card and its weights, written by a run and read back by
``predict``, the GAN's scorer, the Model Registry and any reuse of a run.

A saved net is a folder (``weights/`` among a run's artifacts) holding:

* ``spec.json``: the card. The net's registry name, its constructor arguments (the input shape
  and the CNN head), the input it eats, its normalisation statistics, the label order, the
  feature settings its inputs were made with, the package and code version, and the SHA-256 of
  the weights file.
* the weights: ``model.safetensors`` (plain tensors, no code) for a torch net, or
  ``model.skops`` (scikit-learn objects of a fixed, trusted list of types) for a classical
  baseline.

Reading one never runs code from it. The net is rebuilt from this package's own registry (or an
installed plugin, which the user chose to install), never from anything the folder names as
code: a card naming a ``package.module:factory`` reference, or a net not installed here, is
refused. Every field is checked against what the registry's builder expects (the shape of every
tensor before any is loaded, the hash of the file, the normalisation buffers against the card)
before the weights are used. The MLflow model a run also logs is for the UI and ``mlflow models
serve``; loading *that* with MLflow unpickles it, which means trusting whoever logged it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from genre_models import __version__
from genre_models.config import FeatureConfig
from genre_models.errors import ConfigError, ModelError
from genre_models.genres import GENRES, N_CLASSES
from genre_models.models.registry import get_net
from genre_models.models.spec import InputShape, NetSpec

#: The card's format, checked on reading: a card of another format is refused, not guessed at.
FORMAT = "genre-bench-net/1"
CARD_FILE = "spec.json"
WEIGHTS_FILES = {"torch": "model.safetensors", "classical": "model.skops"}
#: The largest card a reader accepts: a real one is a few kilobytes.
MAX_CARD_BYTES = 1 << 20

#: What a card may make one clip cost (its decoded audio and spectrogram for a GTZAN-length
#: clip) and its net hold (parameters), checked before anything is allocated.
MAX_CLIP_BYTES = 512 << 20
MAX_NET_BYTES = 1 << 30
CLIP_SECONDS = 30

#: Bounds on the feature settings a card may name, so a card cannot ask for an absurd net.
_FEATURE_BOUNDS = {"sample_rate": (1000, 192000), "segment_seconds": (0.1, 10.0), "n_mfcc": (1, 128),
                   "n_fft": (16, 16384), "hop_length": (1, 16384), "n_mels": (1, 512), "silence_top_db": (0.0, 200.0),
                   "image_size": (8, 1024)}


@dataclass(frozen=True)
class SavedNet:
    """A net read back from its folder, ready to score: ``model`` maps a batch of inputs
    (numpy, as ``spec.input_kind`` says) to class probabilities through ``probabilities``."""

    spec: NetSpec
    model: Any  # torch.nn.Module in eval mode, or a fitted scikit-learn estimator
    features: FeatureConfig
    shape: InputShape
    head: str
    epoch: int  # the epoch the weights come from (0 for a classical baseline)
    card: dict

    @property
    def genres(self) -> tuple[str, ...]:
        return tuple(self.card["genres"])

    def example(self, batch: int = 2):
        """An input batch for the logged MLflow model's signature."""
        return self.spec.input_example(self.shape, batch=batch)

    @property
    def metadata(self) -> dict:
        """What rides along in a logged MLflow model (for the UI)."""
        return {"net": self.spec.name, "input_kind": self.spec.input_kind, "genres": list(self.genres),
                "features": asdict(self.features)}


def shape_of(features: FeatureConfig) -> InputShape:
    """The input shape a net gets from these feature settings."""
    return InputShape(features.image_size, features.frames_per_segment, features.n_mfcc, features.segment_samples)


def _normalisation(state: dict) -> dict[str, list[float]]:
    """The input standardisation a net holds as buffers (``mean`` and ``std``), for the card."""
    return {k: [float(x) for x in v.reshape(-1).tolist()] for k, v in state.items()
            if k.rsplit(".", 1)[-1] in ("mean", "std")}


def write_card(folder: Path, spec: NetSpec, features: FeatureConfig, head: str, epoch: int, weights: Path,
               normalisation: dict, code_version: str) -> None:
    card = {"format": FORMAT, "net": spec.name, "family": spec.family, "input_kind": spec.input_kind,
            "constructor": {"shape": asdict(shape_of(features)), "head": head},
            "input": {"kind": spec.input_kind, "per_sample": list(_per_sample(spec, shape_of(features)))},
            "normalisation": normalisation, "genres": list(GENRES), "features": asdict(features), "epoch": int(epoch),
            "weights": weights.name, "weights_sha256": _sha256(weights), "package_version": __version__,
            "code_version": code_version}
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2))


def _per_sample(spec: NetSpec, shape: InputShape) -> tuple[int, ...]:
    return tuple(spec.input_example(shape, batch=1).shape[1:])


def save_net(folder: Path, spec: NetSpec, model, features: FeatureConfig, head: str, epoch: int,
             code_version: str) -> None:
    """Write ``model``'s card and weights into ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILES[spec.family]
    if spec.family == "classical":
        from genre_models.models.classical import save_estimator

        save_estimator(model, weights)
        normalisation = {}
    else:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(weights), metadata={"format": FORMAT, "net": spec.name})
        normalisation = _normalisation(state)
    write_card(folder, spec, features, head, epoch, weights, normalisation, code_version)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- reading, checked


def clip_bytes(f: FeatureConfig) -> int:
    """What scoring one ``CLIP_SECONDS`` clip with these settings holds at once: the decoded
    samples (float32) and the clip's complex STFT (complex64, the largest of the features)."""
    samples = CLIP_SECONDS * f.sample_rate
    frames = 1 + samples // f.hop_length
    return 4 * samples + 8 * frames * (f.n_fft // 2 + 1)


def check_cost(features: FeatureConfig, spec: NetSpec, shape: InputShape, head: str, where: str) -> None:
    """Refuse, before anything is allocated, a card whose settings would cost more than the bounds."""
    cost = clip_bytes(features)
    if cost > MAX_CLIP_BYTES:
        raise ModelError(f"{where}: the card's features would take {cost / 2**30:.1f} GiB to score one {CLIP_SECONDS} s "
                         f"clip (sample_rate {features.sample_rate}, hop_length {features.hop_length}, n_fft "
                         f"{features.n_fft}); the bound is {MAX_CLIP_BYTES >> 20} MiB")
    if features.n_fft // 2 + 1 < features.n_mels:
        raise ModelError(f"{where}: the card's n_fft {features.n_fft} gives {features.n_fft // 2 + 1} frequency bins, "
                         f"too few for its n_mels {features.n_mels}")
    if spec.family != "torch":  # a classical baseline's size is its file's, which the hash pins
        return
    net = 4 * sum(math.prod(s) for s, _ in _expected_state(spec, shape, head).values())
    if net > MAX_NET_BYTES:
        raise ModelError(f"{where}: {spec.name} at the card's input shape would hold {net / 2**30:.1f} GiB of weights "
                         f"(image_size {features.image_size}, n_mfcc {features.n_mfcc}); the bound is "
                         f"{MAX_NET_BYTES >> 30} GiB")


def check_card_values(card: dict, where: str) -> None:
    """The card's normalisation (finite means, standard deviations above 0) and its package
    version (not newer than the running one: its meaning could have changed)."""
    from packaging.version import InvalidVersion, Version

    for key, values in _field(card, "normalisation", dict, where).items():
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                    and math.isfinite(v) for v in values):
            raise ModelError(f"{where}: the card's normalisation {key!r:.60} holds a value that is not a finite number")
        if key.rsplit(".", 1)[-1] == "std" and not all(v > 0 for v in values):
            raise ModelError(f"{where}: the card's normalisation {key!r:.60} holds a standard deviation of 0 or below")
    version = _field(card, "package_version", str, where)
    try:
        newer = Version(version) > Version(__version__)
    except InvalidVersion:
        raise ModelError(f"{where}: the card's package_version {version!r:.40} is not a version") from None
    if newer:
        raise ModelError(f"{where}: the card was written by genre-bench {version:.40}, newer than this {__version__}; "
                         "upgrade to read it")


def read_card(folder: Path, where: str) -> dict:
    """The card as a dict, or ``ModelError``: missing, too large, not JSON, or not ours."""
    path = folder / CARD_FILE
    if not path.is_file() or path.is_symlink():
        raise ModelError(f"{where}: no genre-bench weights ({CARD_FILE} is missing); genre-bench loads only nets it "
                         "saved as plain weights, never a pickled MLflow model")
    if path.stat().st_size > MAX_CARD_BYTES:
        raise ModelError(f"{where}: {CARD_FILE} is {path.stat().st_size:,} bytes, not a genre-bench card")
    try:
        card = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{where}: {CARD_FILE} is not valid JSON ({str(exc)[:120]})") from None
    except RecursionError:
        raise ModelError(f"{where}: {CARD_FILE} is nested too deep to be a genre-bench card") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        got = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise ModelError(f"{where}: {CARD_FILE} is not a genre-bench card of format {FORMAT} (format {got!r})")
    return card


def _field(card: dict, key: str, kind: type, where: str):
    value = card.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ModelError(f"{where}: {CARD_FILE} field {key!r} must be a {kind.__name__}, got {value!r:.80}")
    return value


def card_features(card: dict, where: str) -> FeatureConfig:
    """The card's feature settings: every field of ``FeatureConfig``, of its type, within bounds."""
    raw = _field(card, "features", dict, where)
    known = {f.name: f for f in fields(FeatureConfig)}
    if set(raw) != set(known):
        raise ModelError(f"{where}: {CARD_FILE} features must be exactly {', '.join(sorted(known))}")
    values = {}
    for name, value in raw.items():
        default = FeatureConfig.__dataclass_fields__[name].default
        ok = isinstance(value, str) if isinstance(default, str) else (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
        low, high = _FEATURE_BOUNDS.get(name, (None, None))
        if not ok or (low is not None and not low <= value <= high) or (isinstance(default, int) and value != int(value)):
            raise ModelError(f"{where}: {CARD_FILE} features.{name} = {value!r:.40} is not a valid setting")
        values[name] = int(value) if isinstance(default, int) and not isinstance(default, bool) else value
    try:
        return FeatureConfig(**values)
    except ConfigError as exc:
        raise ModelError(f"{where}: {CARD_FILE} features: {exc}") from None


def card_net(card: dict, where: str) -> NetSpec:
    """The registry's (or an installed plugin's) spec for the card's net. Only a name: a
    ``package.module:factory`` reference would import code the card chose, so it is refused."""
    name = _field(card, "net", str, where)
    if ":" in name or "/" in name:
        raise ModelError(f"{where}: the card names the net {name!r:.80}, a code reference; a saved net must name a "
                         "net of the registry or an installed plugin")
    try:
        spec = get_net(name)
    except ConfigError as exc:
        raise ModelError(f"{where}: the card names the net {name!r}, which is not installed here ({exc})") from None
    if card.get("family") != spec.family or card.get("input_kind") != spec.input_kind:
        raise ModelError(f"{where}: the card says {name} is a {card.get('family')!r} net on {card.get('input_kind')!r} "
                         f"input; here it is a {spec.family!r} net on {spec.input_kind!r} input")
    return spec


def _check_card(card: dict, where: str) -> tuple[NetSpec, FeatureConfig, InputShape, str, int]:
    spec, features = card_net(card, where), card_features(card, where)
    if card.get("genres") != list(GENRES):
        raise ModelError(f"{where}: the card's label order is not genre-bench's ({', '.join(GENRES)})")
    cons = _field(card, "constructor", dict, where)
    shape = shape_of(features)
    if cons.get("shape") != asdict(shape):
        raise ModelError(f"{where}: the card's input shape {cons.get('shape')!r:.120} does not follow from its features")
    head = cons.get("head")
    if head not in ("flatten", "gap"):
        raise ModelError(f"{where}: the card's head {head!r:.40} is not flatten or gap")
    epoch = _field(card, "epoch", int, where)
    if _field(card, "weights", str, where) != WEIGHTS_FILES[spec.family]:
        raise ModelError(f"{where}: the card names the weights {card['weights']!r:.80}, not {WEIGHTS_FILES[spec.family]}")
    check_card_values(card, where)
    check_cost(features, spec, shape, head, where)
    return spec, features, shape, head, epoch


def checked_card(card: dict, where: str) -> tuple[NetSpec, FeatureConfig, InputShape, str, int]:
    """``_check_card``, with a card of any other shape (wrong types deep inside, absurd values)
    refused in one line rather than raising from inside a check."""
    try:
        return _check_card(card, where)
    except ModelError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError, ConfigError) as exc:
        raise ModelError(f"{where}: {CARD_FILE} is malformed ({type(exc).__name__}: {str(exc)[:120]})") from None


def load_net(folder: str | Path, where: str | None = None) -> SavedNet:
    """Read a saved net back as data. ``where`` names it in errors (default: the folder).
    Raises ``ModelError`` (one line) for anything that is not a genre-bench net as written."""
    folder = Path(folder)
    where = where or str(folder)
    card = read_card(folder, where)
    spec, features, shape, head, epoch = checked_card(card, where)
    weights = folder / WEIGHTS_FILES[spec.family]
    if not weights.is_file() or weights.is_symlink():
        raise ModelError(f"{where}: the weights file {weights.name} is missing")
    if _sha256(weights) != card.get("weights_sha256"):
        raise ModelError(f"{where}: {weights.name} is not the file its card was written for (SHA-256 differs)")
    if spec.family == "classical":
        from genre_models.models.classical import load_estimator

        model = load_estimator(weights, where)
    else:
        model = _torch_net(spec, shape, head, weights, card, where)
    return SavedNet(spec, model, features, shape, head, epoch, card)


def _expected_state(spec: NetSpec, shape: InputShape, head: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every tensor the registry's builder makes for this shape, with its dtype, built on the
    meta device (nothing is allocated)."""
    import torch

    with torch.device("meta"):
        model = spec.build(shape, head)
    return {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()}


def _torch_net(spec: NetSpec, shape: InputShape, head: str, weights: Path, card: dict, where: str):
    """Check the safetensors header against the net's tensors, then build and fill the net."""
    import torch
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    want = _expected_state(spec, shape, head)
    _dtypes = {"F32": "float32", "F64": "float64", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
               "I32": "int32", "U8": "uint8", "BOOL": "bool"}
    try:
        with safe_open(str(weights), framework="pt") as fh:
            have = {k: (tuple(fh.get_slice(k).get_shape()), _dtypes.get(fh.get_slice(k).get_dtype(), "?"))
                    for k in fh.keys()}
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{where}: {weights.name} is not a safetensors file of plain tensors "
                         f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if have != want:
        diff = sorted(set(have) ^ set(want)) or [k for k in want if have[k] != want[k]]
        raise ModelError(f"{where}: {weights.name} does not hold the tensors {spec.name} has at this shape "
                         f"(first difference: {diff[0]!r:.80})")
    if not all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
        raise ModelError(f"{where}: {weights.name} holds NaN or infinite weights")
    if _normalisation(state) != card.get("normalisation"):
        raise ModelError(f"{where}: the card's normalisation statistics differ from the weights' own")
    model = spec.build(shape, head)
    model.load_state_dict(state, strict=True)
    return model.eval()


def probabilities(saved: SavedNet, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, ...) inputs as the net eats them -> (N, 10) class probabilities, in batches; a
    probability that is not a finite number is a ``ModelError``, never a result."""
    if saved.spec.family == "classical":
        from genre_models.models.classical import probabilities as classical_probabilities

        probs = np.asarray(classical_probabilities(saved.model, x))
    else:
        probs = _torch_probabilities(saved.model, x, batch)
    if not np.isfinite(probs).all():
        raise ModelError(f"{saved.spec.name} gave probabilities that are not finite numbers for "
                         f"{int((~np.isfinite(probs).all(1)).sum())} of {len(probs)} inputs; nothing is reported from it")
    return probs


def _torch_probabilities(model, x: np.ndarray, batch: int) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for at in range(0, x.shape[0], batch):
            logits = model(torch.from_numpy(np.ascontiguousarray(x[at:at + batch])))  # (b, 10)
            out.append(torch.softmax(logits.float(), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, N_CLASSES), np.float32)
