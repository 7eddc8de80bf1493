"""The registry and the nets: shapes, parameter counts, one optimisation step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genre_models.errors import ConfigError
from genre_models.models.nets import CNN
from genre_models.models.registry import NETS, InputShape, count_parameters, get_net, make_optimizer

SMALL = InputShape(image_size=32, frames=44, n_mfcc=13)
TORCH = [n for n in NETS if NETS[n].family == "torch"]
STUDY = ["net1", "net2", "net3", "net4", "net5", "net6", "net5-raw"]


@pytest.mark.parametrize("name", TORCH)
@pytest.mark.parametrize("head", ["flatten", "gap"])
def test_forward_shape_for_every_registry_entry(name, head):
    spec = NETS[name]
    model = spec.build(SMALL, head)
    x = spec.input_example(SMALL, batch=3)
    assert x.shape == {"image": (3, 3, 32, 32), "mfcc": (3, 44, 13), "raw": (3, 22050)}[spec.input_kind]
    assert model(x).shape == (3, 10)


def test_study_parameter_counts():
    assert count_parameters(NETS["net1"].build(InputShape(), "flatten")) == 12_450_634
    net2 = NETS["net2"].build(InputShape(), "flatten")
    assert count_parameters(net2) == 133_101_642  # the docstring's "about 133M"
    assert count_parameters(net2.head[1]) == 256 * 45 * 45 * 256 + 256
    assert count_parameters(NETS["net2"].build(InputShape(), "gap")) == 456_778
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in NETS["net3"].build(SMALL, "gap").modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in NETS["net2"].build(SMALL, "gap").modules())


@pytest.mark.parametrize("name", TORCH)
def test_one_step_lowers_the_loss_on_a_fixed_batch(name):
    torch.manual_seed(0)
    spec = NETS[name]
    model = spec.build(SMALL, "flatten")
    x = spec.input_example(SMALL, batch=16)
    y = torch.arange(16) % 10
    if hasattr(model, "fit_input_stats"):
        model.fit_input_stats(x)
    opt = make_optimizer(spec, model.parameters(), spec.lr)
    model.train()
    before = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    after = torch.nn.functional.cross_entropy(model(x), y)
    assert after.item() < before.item()


def test_spec_settings_follow_the_study():
    assert [NETS[n].optimizer for n in STUDY] == ["adam", "adam", "adam", "rmsprop", "adam", "adam", "adam"]
    assert all(NETS[n].lr == 1e-4 for n in STUDY) and TORCH == STUDY
    assert [NETS[n].early_stopping for n in STUDY] == [False] * 4 + [True] * 3
    assert [(n, NETS[n].family, NETS[n].input_kind, NETS[n].lr) for n in NETS if n not in STUDY] == [
        ("svm", "classical", "stats", None), ("logreg", "classical", "stats", None)]
    assert [n for n in NETS if NETS[n].uses_gan] == ["net6"]
    assert NETS["net1"].study == {"acc_50": 0.4257, "acc_100": 0.4950}
    assert NETS["net6"].study == {"acc": 0.8291, "stopped_epoch": 18}
    # net6 is net5's architecture: only its training data differs. net5-raw is net5's LSTM stack
    # on 43 frames of 512 raw samples, against the study's "< 0.15".
    assert type(NETS["net6"].build(SMALL, "flatten")) is type(NETS["net5"].build(SMALL, "flatten"))
    raw = NETS["net5-raw"].build(SMALL, "flatten")
    assert [type(m) for m in raw.lstm.children()] == [type(m) for m in NETS["net5"].build(SMALL, "flatten").children()]
    assert raw.lstm.lstm1.input_size == 512 and raw.frames == 43 and NETS["net5-raw"].study == {"acc_below": 0.15}


def test_unknown_net_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown net 'net9'; valid nets: net1, net2, net3, net4, net5, net6, net5-raw, "
                                          "svm, logreg, or a plugin as package.module:factory"):
        get_net("net9")
    with pytest.raises(ConfigError):
        CNN(32, head="avg")


def test_lstm_input_stats_match_numpy_in_chunks():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1000, 44, 13)) * 50 + 10).astype(np.float32)
    model = NETS["net5"].build(SMALL, "flatten")
    model.fit_input_stats(torch.from_numpy(x), chunk=97)
    flat = x.reshape(-1, 13).astype(np.float64)
    np.testing.assert_allclose(model.mean.numpy(), flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(model.std.numpy(), flat.std(0, ddof=1), rtol=1e-5)


def test_the_registry_owns_the_roles_the_suite_asks_about():
    from genre_models.models.registry import comparisons, gan_scorer

    assert gan_scorer().name == "net5"  # the GAN's quality figure and the sweep's GAN point read this
    assert comparisons() == [("svm", "net5"), ("net5", "net6"), ("net5", "net5-raw")]  # the report's paired comparisons
    assert [NETS[n].study_epochs for n in NETS] == [[50, 100]] * 4 + [[], [], [], [], []]


def test_raw_input_stats_are_those_of_the_scaled_frames():
    rng = np.random.default_rng(0)
    audio = rng.integers(-20000, 20000, (50, 22050), dtype=np.int16)
    model = NETS["net5-raw"].build(SMALL, "flatten")
    model.fit_input_stats(audio)  # int16 as stored: the loop feeds it scaled by 1/32767 (from_pcm16)
    frames = (audio[:, :43 * 512].astype(np.float64) / 32767.0).reshape(-1, 512)
    np.testing.assert_allclose(model.lstm.mean.numpy(), frames.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.lstm.std.numpy(), frames.std(0, ddof=1), rtol=1e-4)
    x = torch.from_numpy(audio[:2].astype(np.float32) / 32767.0)
    assert torch.equal(model.framed(x)[1, 2], x[1, 1024:1536])  # frame 2 of clip 1: samples 1024..1535


@pytest.mark.parametrize("kind", ["svm", "logreg"])
def test_a_baseline_fits_chooses_on_validation_and_reads_back_without_pickle(kind, tmp_path):
    """Fitted on separable statistics it chooses its hyper-parameters on validation, scores (N, 10)
    probabilities, and its saved folder reads back through skops' trusted types only: a file naming
    another type, or a pickle, is refused in one line."""
    import json
    import pickle

    from genre_models.config import FeatureConfig
    from genre_models.errors import ModelError
    from genre_models.models.classical import GRIDS, fit_classical, probabilities
    from genre_models.models.saved import load_net, save_net

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 12)
    x = (rng.normal(size=(120, 74)) + 3 * rng.normal(size=(10, 74))[y]).astype(np.float32)  # a centre per genre
    tracks = np.repeat(np.arange(40), 3)
    fitted = fit_classical(kind, x[::2], y[::2], x[1::2], y[1::2], 0, tracks[::2], tracks[1::2])
    assert set(fitted.chosen) == set(GRIDS[kind]) and len(fitted.tried) == int(np.prod([len(v) for v in GRIDS[kind].values()]))
    assert fitted.val_accuracy == max(acc for _, acc in fitted.tried) >= 0.9
    p = probabilities(fitted.model, x[1::2])
    assert p.shape == (60, 10) and np.allclose(p.sum(1), 1.0, atol=1e-5)
    folder = tmp_path / "weights"
    save_net(folder, NETS[kind], fitted.model, FeatureConfig(), "flatten", 1, "test")
    saved = load_net(folder)
    assert np.allclose(probabilities(saved.model, x[1::2]), p) and json.loads((folder / "spec.json").read_text())["family"] == "classical"
    card = json.loads((folder / "spec.json").read_text())
    (folder / "model.skops").write_bytes(pickle.dumps(fitted.model))  # a pickle where the skops file was
    card["weights_sha256"] = __import__("hashlib").sha256((folder / "model.skops").read_bytes()).hexdigest()
    (folder / "spec.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"model.skops is not a skops file of scikit-learn objects"):
        load_net(folder)


def test_a_baseline_refuses_the_loop_settings_it_has_no_use_for():
    from genre_models.config import TrainConfig
    from genre_models.models.registry import resolve_config

    assert resolve_config(TrainConfig(net="svm", data_dir="x")).epochs == 1
    with pytest.raises(ConfigError, match=r"svm is a classical baseline, fitted once .*: lr, epochs do not apply to it"):
        resolve_config(TrainConfig(net="svm", data_dir="x", lr=0.1, epochs=5))
