"""WaveGAN: shapes, phase shuffle, WGAN-GP, resume, divergence, no leakage, and the gan/net6 runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.config import FeatureConfig, GanConfig, PreprocessConfig, SplitConfig, WaveGanConfig
from genre_models.errors import GanDiverged
from genre_models.data.features import mfcc_batch
from genre_models.data.audio import from_pcm16
from genre_models.data.segment_audio import training_audio
from genre_models.data.store import build_features as preprocess
from genre_models.training.gan_loop import gan_key, train_wavegan
from genre_models.training.generation import GeneratedSet, gan_to_segment, generation_quality
from genre_models.models.wavegan import Discriminator, Generator, PhaseShuffle, d_loss, g_loss, gradient_penalty

TINY_GAN = WaveGanConfig(steps=4, batch_size=4, d=2, per_genre=3)
GAN_CLI = ["--steps", "3", "--d", "4", "--batch-size", "4", "--per-genre", "5", "--log-every", "1", "--preview-every", "2",
           "--checkpoint-every", "2", "--quality-epochs", "2"]


def test_generator_and_discriminator_shapes():
    torch.manual_seed(0)
    z, labels = torch.randn(3, 100), torch.tensor([0, 4, 9])
    for n_classes in (0, 10):
        G, D = Generator(d=4, n_classes=n_classes), Discriminator(d=4, n_classes=n_classes)
        x = G(z, labels if n_classes else None)
        assert x.shape == (3, 16384) and x.abs().max() <= 1.0
        assert D(x, labels if n_classes else None).shape == (3,)
    # The paper's unconditional generator at d=64: dense 100 -> 16384, then 5 transposed convolutions.
    chans = [1024, 512, 256, 128, 64, 1]
    expected = 100 * 16384 + 16384 + sum(chans[i] * chans[i + 1] * 25 + chans[i + 1] for i in range(5))
    assert sum(p.numel() for p in Generator(d=64).parameters()) == expected == 19_065_345


def test_phase_shuffle_shifts_each_example_with_reflection():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2, 3, 8)  # (B, C, L)
    ps = PhaseShuffle(2)
    out = ps(x, shifts=torch.tensor([1, -2]))
    # Example 0 moves right by 1 (the new first sample reflects x[1]); example 1 left by 2.
    assert torch.equal(out[0], torch.cat([x[0, :, 1:2], x[0, :, :7]], dim=1))
    assert torch.equal(out[1], torch.cat([x[1, :, 2:], x[1, :, 6:7], x[1, :, 5:6]], dim=1))
    assert torch.equal(ps(x, shifts=torch.zeros(2, dtype=torch.long)), x)
    ps.eval()
    assert torch.equal(ps(x), x)  # off outside training
    ps.train()
    torch.manual_seed(0)
    y = torch.randn(64, 4, 32)
    out = ps(y)
    assert out.shape == y.shape
    candidates = [ps(y, shifts=torch.full((64,), k)) for k in range(-2, 3)]
    matches = torch.stack([(c == out).flatten(1).all(1) for c in candidates])  # (5, B): which shift each got
    assert matches.any(0).all()  # every example got one shift in [-2, 2], shared by its channels
    assert matches.sum(1).gt(0).sum() >= 3  # and the shifts vary across the batch


class _Linear(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x, labels=None):
        return x @ self.w


def test_wgan_gp_losses_and_gradient_penalty():
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([1.0, -1.0])
    assert d_loss(real, fake).item() == pytest.approx(0.0 - 3.0)
    assert g_loss(fake).item() == pytest.approx(0.0)
    a, b = torch.randn(8, 16), torch.randn(8, 16)
    unit = torch.nn.functional.normalize(torch.randn(16), dim=0)
    assert gradient_penalty(_Linear(unit), a, b).item() == pytest.approx(0.0, abs=1e-10)  # ||grad|| = 1
    assert gradient_penalty(_Linear(3 * unit), a, b).item() == pytest.approx(4.0, rel=1e-5)  # (3 - 1)^2
    torch.manual_seed(0)
    D, G = Discriminator(d=2, n_classes=10), Generator(d=2, n_classes=10)
    labels = torch.randint(0, 10, (4,))
    gp = gradient_penalty(D, torch.rand(4, 16384) * 2 - 1, G(torch.randn(4, 100), labels).detach(), labels)
    assert torch.isfinite(gp) and gp.item() >= 0
    gp.backward()  # the penalty is differentiable w.r.t. D's weights (double backward)
    assert all(torch.isfinite(p.grad).all() for p in D.parameters() if p.grad is not None)


def test_generated_clips_have_the_mfcc_shape_of_real_segments(demo_dir, tmp_path):
    fcfg = FeatureConfig()
    store = preprocess(PreprocessConfig(data_dir=str(demo_dir), features=fcfg, cache_dir=str(tmp_path / "c"))).store
    clips = torch.tanh(torch.randn(3, 16384)).numpy()
    segs = gan_to_segment(clips, fcfg.segment_samples)
    assert segs.shape == (3, fcfg.segment_samples) == (3, 22050)
    assert np.array_equal(segs[:, :16384], clips)  # the clip itself, untouched...
    assert np.array_equal(segs[:, 16384:], clips[:, -2:-2 - (22050 - 16384):-1])  # ...then its end, reflected
    mf = mfcc_batch(segs, fcfg.sample_rate, fcfg.n_mfcc, fcfg.n_fft, fcfg.hop_length, fcfg.n_mels)
    assert mf.shape[1:] == store.mfcc.shape[1:] == (44, 13)


@pytest.mark.slow
def test_real_segments_through_the_gan_path_still_look_real_to_net5(demo_dir, tmp_path):
    """The quality figure's yardstick: real training audio, cut to the GAN's 16384 samples and
    padded back as generated clips are, must still be recognised by a real-data net5 about as
    well as the untouched segments (a 16 kHz round trip fails this: see gan.py)."""
    from genre_models.config import TrainConfig
    from genre_models.stages.train import train

    fcfg, cache = FeatureConfig(), str(tmp_path / "c")
    store = preprocess(PreprocessConfig(data_dir=str(demo_dir), features=fcfg, cache_dir=cache)).store
    real = training_audio(store, SplitConfig(), fcfg, cache)
    model = train(TrainConfig(net="net5", data_dir=str(demo_dir), epochs=20, cache_dir=cache, log_model=False)).model
    model = model.cpu().eval()
    segs = from_pcm16(np.asarray(real.audio))  # (N, 22050)

    def score(x):
        mf = mfcc_batch(x, fcfg.sample_rate, fcfg.n_mfcc, fcfg.n_fft, fcfg.hop_length, fcfg.n_mels)
        return generation_quality(model, GeneratedSet(mf, real.labels, ""))["gen_quality_accuracy"]

    untouched, gan_path = score(segs), score(gan_to_segment(segs[:, :16384], fcfg.segment_samples))
    assert untouched > 0.3
    assert gan_path > untouched - 0.15, (untouched, gan_path)


@pytest.mark.parametrize("split", ["track", "random"])
def test_no_validation_or_test_audio_reaches_gan_training(split, demo_dir, tmp_path, monkeypatch):
    import genre_models.data.audio as dataset
    import genre_models.stages.gan as gan
    from genre_models.workflow.get_or_run import run_gan

    cache = str(tmp_path / "c")
    cfg = GanConfig(data_dir=str(demo_dir), gan=TINY_GAN, split=split, seed=1, device="cpu", cache_dir=cache, jobs=1,
                    quality_epochs=1)  # the scorer net is not what this test is about
    store = preprocess(PreprocessConfig(data_dir=cfg.data_dir, features=cfg.features, cache_dir=cache, jobs=1)).store
    decoded: list[str] = []
    real_load = dataset.load_audio
    monkeypatch.setattr(dataset, "load_audio", lambda path, sr: (decoded.append(path), real_load(path, sr))[1])
    seen: dict = {}
    real_train = gan.train_wavegan

    def spy(cfg_, real, *a, **kw):  # what the training loop is handed is all it can sample from
        seen["real"] = real
        return real_train(cfg_, real, *a, **kw)

    monkeypatch.setattr(gan, "train_wavegan", spy)
    run_gan(cfg)

    tracks = store.tracks
    seg_parts = store.parts("mfcc", SplitConfig(split=split, seed=1))
    seg_track = np.asarray(store.seg_track)
    within = np.arange(len(seg_track)) - np.searchsorted(seg_track, np.arange(len(tracks)))[seg_track]
    pairs = {p: set(zip(seg_track[seg_parts == p].tolist(), within[seg_parts == p].tolist())) for p in (0, 1, 2)}
    real = seen["real"]
    used = set(zip(real.track.tolist(), real.index.tolist()))
    assert used == pairs[0]  # exactly the training part's segments...
    assert not used & (pairs[1] | pairs[2])  # ...and not one validation or test segment
    assert len(real) == int((seg_parts == 0).sum()) and real.audio.shape == (len(real), 22050)
    assert (real.labels == tracks.label.to_numpy()[real.track]).all()
    if split == "track":
        held_out = {tracks.path.iloc[t] for p in (1, 2) for t, _ in pairs[p]}
        assert held_out and not any(path.endswith(h) for path in decoded for h in held_out)
        assert set(real.track_ids) == {tracks.track_id.iloc[t] for t, _ in pairs[0]}


def _first_generator_state(training):
    return {k: v.clone() for k, v in training.units[0].G.state_dict().items()}


def test_a_killed_run_resumes_from_its_checkpoint_and_matches_an_unbroken_one(demo_dir, tmp_path, monkeypatch):
    import genre_models.training.gan_loop as gan

    cfg = GanConfig(data_dir=str(demo_dir), gan=TINY_GAN, device="cpu", cache_dir=str(tmp_path / "c"), checkpoint_every=2,
                    jobs=1)
    store = preprocess(PreprocessConfig(data_dir=cfg.data_dir, features=cfg.features, cache_dir=cfg.cache_dir, jobs=1)).store
    real = training_audio(store, SplitConfig(), cfg.features, cfg.cache_dir, 1)
    key = gan_key(cfg, store.digest)
    dev = torch.device("cpu")
    unbroken = train_wavegan(cfg, real, dev, tmp_path / "a", key)
    assert unbroken.step == 4 and unbroken.resumed_from == 0 and len(unbroken.history) == 4 // cfg.log_every + 1

    calls = {"n": 0}
    real_step = gan.gan_step

    def dies_at_step_3(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if killed in the middle of step 3
        return real_step(*a, **kw)

    monkeypatch.setattr(gan, "gan_step", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train_wavegan(cfg, real, dev, tmp_path / "b", key)
    monkeypatch.setattr(gan, "gan_step", real_step)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 2 and set(state["units"][0]) == {"G", "D", "opt_g", "opt_d"}
    resumed = train_wavegan(cfg, real, dev, tmp_path / "b", key)
    assert resumed.resumed_from == 2 and resumed.step == 4
    a, b = _first_generator_state(unbroken), _first_generator_state(resumed)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    again = train_wavegan(cfg, real, dev, tmp_path / "b", key)  # finished: nothing left to train
    assert again.resumed_from == 4 and again.step == 4
    fresh = train_wavegan(cfg, real, dev, tmp_path / "b", key, fresh=True)
    assert fresh.resumed_from == 0


def test_nan_loss_stops_with_a_one_line_error_naming_the_last_checkpoint(demo_dir, tmp_store, monkeypatch):
    import genre_models.models.wavegan as wavegan

    calls = {"n": 0}
    real_gp = wavegan.gradient_penalty

    def gp_goes_nan(*a, **kw):
        calls["n"] += 1
        out = real_gp(*a, **kw)
        return out * float("nan") if calls["n"] > 2 else out  # n_critic 1: NaN from step 3

    monkeypatch.setattr(wavegan, "gradient_penalty", gp_goes_nan)
    result = CliRunner().invoke(main, ["gan", "--data-dir", str(demo_dir), "--steps", "5", "--d", "2", "--batch-size", "4",
                                       "--n-critic", "1", "--checkpoint-every", "2", "--per-genre", "2", "--jobs", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: WaveGAN diverged at step 3: d_loss = nan")
    assert "checkpoint.pt (step 2)" in line
    import mlflow

    (run,) = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], output_format="list")
    assert run.info.status == "FAILED" and run.data.tags["last_good_checkpoint"].endswith("checkpoint.pt")


def test_divergence_before_any_checkpoint_says_so(demo_dir, tmp_path, monkeypatch):
    from genre_models.training.gan_loop import check_finite

    with pytest.raises(GanDiverged, match=r"step 1: g_loss = inf; last good checkpoint: none yet"):
        check_finite(1, {"d_loss": 0.0, "g_loss": float("inf"), "gp": 0.0}, "ck.pt", 0)
    with pytest.raises(GanDiverged, match=r"d_loss = 2e\+07"):
        check_finite(9, {"d_loss": 2e7, "g_loss": 0.0, "gp": 0.0}, "ck.pt", 8)


@pytest.mark.slow
def test_gan_cli_logs_previews_generated_set_quality_and_model_then_resumes(demo_dir, tmp_store):
    import mlflow

    first = CliRunner().invoke(main, ["gan", "--data-dir", str(demo_dir), *GAN_CLI])
    assert first.exit_code == 0, first.output
    (run,) = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], output_format="list")
    client = mlflow.MlflowClient()
    m, tags = run.data.metrics, run.data.tags
    assert run.info.status == "FINISHED" and tags["stage"] == "gan" and tags["dataset_synthetic"] == "true"
    assert [h.step for h in client.get_metric_history(run.info.run_id, "d_loss")] == [1, 2, 3]
    assert {"g_loss", "gp", "wasserstein", "steps_per_sec"} <= set(m)
    p = run.data.params
    assert p["n_generated"] == "50" and "n_generated" not in m  # counts are parameters
    assert 0.0 <= m["gen_quality_accuracy"] <= 1.0 and "gen_quality_accuracy_metal" in m
    assert p["n_real_segments"] == "120" and p["n_real_tracks"] == "30"  # 3 training tracks per genre, 4 segments each
    previews = {a.path for a in client.list_artifacts(run.info.run_id, "previews")}
    assert previews == {"previews/real", "previews/step_0000002", "previews/step_0000003"}
    wavs = [a.path for a in client.list_artifacts(run.info.run_id, "previews/step_0000003")]
    assert len(wavs) == 10 and all(w.endswith(".wav") for w in wavs)
    import soundfile as sf

    y, sr = sf.read(client.download_artifacts(run.info.run_id, "previews/step_0000003/rock.wav"))
    assert sr == 22050 and y.shape == (16384,)  # the clip as generated: 0.743 s
    labels = np.load(client.download_artifacts(run.info.run_id, "generated/labels.npy"))
    assert np.bincount(labels).tolist() == [5] * 10
    assert np.load(client.download_artifacts(run.info.run_id, "generated/mfcc.npy")).shape == (50, 44, 13)
    gen = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/generator")
    x = torch.cat([torch.randn(3, 100), torch.nn.functional.one_hot(torch.tensor([1, 2, 3]), 10).float()], 1)
    assert gen(x).shape == (3, 16384)

    again = CliRunner().invoke(main, ["gan", "--data-dir", str(demo_dir), *GAN_CLI])
    assert again.exit_code == 0, again.output
    assert "resumed from step 3" in again.stdout
    runs = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], output_format="list")
    second = next(r for r in runs if r.info.run_id != run.info.run_id)
    assert second.data.tags["resumed_from_step"] == "3" and second.data.tags["generated_dir"] == tags["generated_dir"]


@pytest.mark.slow
def test_net6_uses_a_matching_gan_run_and_refuses_one_from_another_split(demo_dir, tmp_store):
    import mlflow

    gan_args = ["--steps", "2", "--d", "2", "--batch-size", "4", "--per-genre", "4", "--quality-epochs", "1"]
    g = CliRunner().invoke(main, ["gan", "--data-dir", str(demo_dir), *gan_args])
    assert g.exit_code == 0, g.output
    gan_run_id = g.stdout.strip().split()[-1]
    net_args = ["train", "--net", "net6", "--data-dir", str(demo_dir), "--epochs", "2", "--gan-steps", "2", "--gan-d", "2",
                "--gan-batch-size", "4", "--gan-per-genre", "4"]
    t = CliRunner().invoke(main, net_args)
    assert t.exit_code == 0, t.output
    assert "= 120 real + 40 generated" in t.stdout
    runs = mlflow.search_runs(experiment_names=["gtzan-genre-benchmark"], output_format="list")
    assert len(runs) == 2  # the GAN was found, not trained again
    net6 = next(r for r in runs if r.data.tags.get("net") == "net6")
    assert net6.data.tags["gan_run_id"] == gan_run_id and net6.data.tags["gan_reused"] == "true"
    p = {k: int(v) for k, v in net6.data.params.items() if k.startswith("n_") and v.isdigit()}
    assert p["n_train"] == p["n_train_real"] + p["n_generated"] == 160 and p["n_val"] == 40 and p["n_test"] == 40

    other = CliRunner().invoke(main, [*net_args, "--seed", "5", "--gan-run-id", gan_run_id])
    assert other.exit_code == 2 and "Traceback" not in other.output
    line = other.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: gan_run_id {gan_run_id} was trained on split track, seed 0, dataset ")
    assert "but this run uses split track, seed 5, dataset " in line
    assert line.endswith("its training audio may include this run's validation or test tracks")
    fold = CliRunner().invoke(main, [*net_args, "--split", "kfold", "--fold", "2", "--gan-run-id", gan_run_id])
    assert fold.exit_code == 2 and "but this run uses split kfold, seed 0, fold 2, folds 10, dataset " in fold.stderr


@pytest.mark.sample
def test_gan_training_audio_from_the_real_sample(sample_dir, tmp_path):
    cache = str(tmp_path / "c")
    store = preprocess(PreprocessConfig(data_dir=str(sample_dir), features=FeatureConfig(), cache_dir=cache)).store
    real = training_audio(store, SplitConfig(), FeatureConfig(), cache)
    parts = store.parts("mfcc", SplitConfig())
    assert len(real) == int((parts == 0).sum()) and len(real.track_ids) == 30  # 3 of 5 tracks per genre
    assert "jazz.00054" not in real.track_ids  # the corrupt file never reaches the GAN
    x = real.audio[:8].astype(np.float32) / 32767  # (8, 22050): real music, not silence
    assert real.audio.shape[1] == 22050 and np.abs(x).max(axis=1).min() > 0.01


@pytest.mark.slow
def test_quality_figure_reuses_a_finished_net5_run(demo_dir, tmp_store):
    import mlflow

    t = CliRunner().invoke(main, ["train", "--net", "net5", "--data-dir", str(demo_dir), "--epochs", "1", "--image-size", "32"])
    assert t.exit_code == 0, t.output
    net5_id = t.stdout.strip().split()[-1]
    g = CliRunner().invoke(main, ["gan", "--data-dir", str(demo_dir), "--steps", "1", "--d", "2", "--batch-size", "4",
                                  "--per-genre", "2", "--no-log-model"])
    assert g.exit_code == 0, g.output
    run = mlflow.get_run(g.stdout.strip().split()[-1])
    assert run.data.tags["quality_net"] == f"run {net5_id}"  # image settings differ; MFCC settings match
    assert run.data.metrics["quality_net_test_accuracy"] == mlflow.get_run(net5_id).data.metrics["test_accuracy"]


def test_gan_metrics_are_read_once_per_window_and_each_step_still_checked():
    """On a GPU the loop reads the losses only when it logs or checkpoints; every step of the
    window is still checked, so a NaN at step 7 is named as step 7, not as the step read."""
    from genre_models.errors import GanDiverged
    from genre_models.training.gan_loop import _settle, as_floats

    def row(v):
        return {k: torch.tensor(v) for k in ("d_loss", "g_loss", "gp", "wasserstein")}

    assert as_floats([row(1.0), row(2.5)]) == [{k: 1.0 for k in row(0)}, {k: 2.5 for k in row(0)}]
    pending = [(5, row(0.1)), (6, row(0.2))]
    assert _settle(pending, "ck.pt", 4) == {k: pytest.approx(0.2) for k in row(0)} and pending == []
    pending = [(6, row(0.1)), (7, row(float("nan"))), (8, row(0.3))]
    with pytest.raises(GanDiverged, match=r"WaveGAN diverged at step 7: d_loss = nan; last good checkpoint: ck.pt \(step 4\)"):
        _settle(pending, "ck.pt", 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none; see the README's GPU figures)")
def test_wavegan_on_cuda_uses_fused_adam_and_finishes_with_finite_losses(demo_dir, tmp_path):
    cfg = GanConfig(data_dir=str(demo_dir), gan=TINY_GAN, device="cuda", cache_dir=str(tmp_path / "c"), jobs=1,
                    log_every=2, checkpoint_every=2)
    store = preprocess(PreprocessConfig(data_dir=cfg.data_dir, features=cfg.features, cache_dir=cfg.cache_dir, jobs=1)).store
    real = training_audio(store, SplitConfig(), cfg.features, cfg.cache_dir, 1)
    done = train_wavegan(cfg, real, torch.device("cuda"), tmp_path / "w", gan_key(cfg, store.digest))
    assert done.step == TINY_GAN.steps and done.units[0].opt_d.defaults.get("fused") is True
    assert [h["step"] for h in done.history] == [2, 4] and all(np.isfinite(h["d_loss"]) for h in done.history)
