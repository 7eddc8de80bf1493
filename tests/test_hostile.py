"""A stranger's run can spoil its own row, never a colleague's report or machine: text from a
shared store rendered in every output format, runs with malformed tags, cards that ask for too
much, a batch with one bad clip, and outputs written atomically (stores and servers: `test_hostile_store.py`)."""

from __future__ import annotations

import csv
import os
import errno
import json
import re
import time
from dataclasses import asdict
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from benchmark.cli import main
from genre_models.config import FeatureConfig
from genre_models.data.synth import synth_track
from genre_models.errors import ModelError
from genre_models.models.saved import load_net, probabilities, shape_of
from genre_models.stages.report import write_report

from conftest import fake_run, one_line_error, saved_net5, write_wav

EXP = "gtzan-genre-benchmark"

#: Names a stranger could give a net, a dataset or a code version in a shared store.
NASTY = [
    "[x&#93;(javascript:alert(1))",
    "[y](javascript:alert(2))",
    "<img src=x onerror=alert(3)>",
    "line\nbreak | and pipe",
    "=cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "rtl \u202eexe.txt",
    "tab\tand\rreturn",
    "&lt;script&gt;alert(4)&lt;/script&gt;",
    "w" * 10_000,
]


_PIPE = re.compile(r"(?<!\\)\|")


def _tables(text: str) -> list[list[str]]:
    """Each markdown table's lines."""
    out, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            out.append(block)
            block = []
    return out


def test_store_text_never_becomes_markup_in_any_format(tmp_store, tmp_path):
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    for i, name in enumerate(NASTY):
        for seed in range(3):
            fake_run(client, exp_id, name, seed, 0.5 + 0.01 * i + 0.02 * seed, epochs=5, stopped_epoch=3, right=5,
                     tags={"input_kind": "mfcc", "net_origin": name, "code_version": name, "net_baseline": "net5"},
                     params={"early_stopping": "True"})
    for seed in range(3):
        fake_run(client, exp_id, "net5", seed, 0.5, stopped_epoch=3, right=4)
    out = tmp_path / "r" / "report.md"
    rep = write_report(EXP, out=str(out), figures=False)
    assert rep.n_runs == 3 * len(NASTY) + 3
    text, page = out.read_text(), out.with_suffix(".html").read_text()
    # Markdown: a name never splits a row (every row has its header's cells), nor makes a tag or a link.
    tables = _tables(text)
    assert len(tables) >= 4
    for table in tables:
        assert {len(_PIPE.findall(row)) for row in table} == {len(_PIPE.findall(table[0]))}, table[0]
    assert "\u202e" not in text and "rtl \\u202eexe.txt" in text and "line\\nbreak" in text  # shown, not obeyed
    assert not re.search(r"(?<!\\)\]\(javascript", text) and "<img" not in text and "&amp;#93;" in text
    # HTML: links and images only from the report's own markup.
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith(("report_files/", "https://")) for h in hrefs), hrefs
    assert re.findall(r"<img\b", page) == [] and "<script" not in page and "\u202e" not in page
    assert "[x&amp;#93;(javascript:alert(1))" in page  # shown as the text it is
    # CSV: no cell a spreadsheet would run, no raw control or direction character.
    files = out.parent / "report_files"
    for f in files.glob("*.csv"):
        for row in csv.reader(f.open(newline="")):
            for cell in row:
                assert not cell.startswith(("=", "+", "@", "\t", "\r")) and "\n" not in cell and "\u202e" not in cell, (f, cell)
    assert any("'=cmd" in f.read_text() for f in files.glob("*.csv"))
    # LaTeX: the specials a name holds are escaped, controls shown.
    tex = "".join(f.read_text() for f in files.glob("*.tex"))
    assert "[x\\&\\#93;(javascript:alert(1))" in tex and "\u202e" not in tex and "tab\\textbackslash{}tand" in tex


# --------------------------------------------------------------------------- a card that asks for too much


def test_a_card_is_checked_for_cost_and_sense_before_anything_is_allocated(tmp_path):
    folder = saved_net5(tmp_path / "w")
    card = json.loads((folder / "spec.json").read_text())

    def refused(change, match: str) -> None:
        (folder / "spec.json").write_text(change(json.loads(json.dumps(card))))
        with pytest.raises(ModelError, match=match) as err:
            load_net(folder)
        assert "\n" not in str(err.value)
        (folder / "spec.json").write_text(json.dumps(card))

    def features(**kw):
        def change(c):
            f = {**c["features"], **kw}
            c["features"], c["constructor"]["shape"] = f, asdict(shape_of(FeatureConfig(**f)))
            return json.dumps(c)
        return change

    refused(features(sample_rate=192000, hop_length=1, n_fft=16384),
            r"would take 351\.6 GiB to score one 30 s clip \(sample_rate 192000, hop_length 1, n_fft 16384\)")
    refused(features(n_fft=16), r"n_fft 16 gives 9 frequency bins, too few for its n_mels 128")
    refused(lambda c: json.dumps({**c, "normalisation": {**c["normalisation"], "norm.std": [0.0] * 13}}),
            r"normalisation 'norm.std' holds a standard deviation of 0 or below")
    refused(lambda c: json.dumps({**c, "normalisation": {"x.mean": ["a"]}}), r"is not a finite number")
    refused(lambda c: json.dumps({**c, "package_version": "99"}), r"written by genre-bench 99, newer than this 0.1.0")
    refused(lambda c: json.dumps({**c, "constructor": []}), r"field 'constructor' must be a dict")
    refused(lambda c: json.dumps({**c, "constructor": {"shape": [], "head": {}}}), r"input shape \[\] does not follow")
    refused(lambda c: json.dumps({**c, "features": {**c["features"], "n_mels": [128]}}), r"features.n_mels = \[128\]")
    refused(lambda c: "[" * 100_000 + "]" * 100_000, r"nested too deep|not valid JSON")
    refused(lambda c: '{"format": "genre-bench-net/1", "net": "net5", "family": "torch", "input_kind": "mfcc", '
            '"features": 7}', r"field 'features' must be a dict")
    saved = load_net(folder)  # the genuine card still loads; a net that overflows never prints a number
    with torch.no_grad():
        for p in saved.model.parameters():
            p.fill_(1e38)
    with pytest.raises(ModelError, match=r"not finite numbers for 2 of 2 inputs"):
        probabilities(saved, np.ones((2, 44, 13), np.float32))


# --------------------------------------------------------------------------- one bad item is one line


def test_a_report_leaves_out_runs_with_malformed_tags_and_stands(tmp_store, tmp_path):
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    for seed in range(3):
        fake_run(client, exp_id, "net5", seed, 0.5 + 0.1 * seed, stopped_epoch=3)
    fake_run(client, exp_id, "net5", 7, 0.9, tags={"seed": "@SUM(1+1)"})
    fake_run(client, exp_id, "net5", 8, 0.9, split="kfold", tags={"fold": "=1+1"})
    fake_run(client, exp_id, "net2", 9, 0.9, params={"epochs": "many"})
    fake_run(client, exp_id, "net5", 10, 0.9, tags={"net": ""})
    fake_run(client, exp_id, "mynet", 11, 0.9, params={"epochs": "many"}, tags={"input_kind": "mfcc"})  # a plugin's
    rep = write_report(EXP, out=str(tmp_path / "r.md"), figures=False)
    assert rep.n_runs == 3 and rep.notes["malformed"] == {"seed not a whole number": 1, "fold not a whole number": 1,
                                                           "epochs not a number": 2, "no net tag": 1}
    note = next(line for line in rep.text.splitlines() if line.startswith("- **Note:** training runs whose tags"))
    assert "1 with seed not a whole number" in note and "1 with no net tag" in note


def test_every_entry_of_a_folder_is_scored_or_skipped_with_why(tmp_path):
    from genre_models.stages.predict import _inputs_of, predict

    clips = tmp_path / "clips"
    write_wav(clips / "a.wav", synth_track("rock", 3.0, 1))
    whole = write_wav(clips / "b.wav", synth_track("pop", 3.0, 2)).read_bytes()
    (clips / "cut.wav").write_bytes(whole[: len(whole) // 3])  # the header promises three times what it holds
    (clips / "sub").mkdir()
    (clips / "to-sub").symlink_to(clips / "sub", target_is_directory=True)
    (clips / "loop").symlink_to(clips / "loop")
    res = predict([str(clips)], str(saved_net5(tmp_path / "w")), jobs=1)
    assert [Path(c.file).name for c in res.clips] == ["a.wav", "b.wav"]
    why = {Path(f).name: r for f, r in res.skipped}
    assert why["cut.wav"].startswith("truncated: the header promises 66150 frames, the file holds ")
    assert why["to-sub"].startswith("symlink to a folder (not followed") and "Too many levels" in why["loop"]
    assert _inputs_of((str(tmp_path / "gone.wav"), "mfcc", FeatureConfig())) == (
        None, "the file was removed while the batch ran")


# --------------------------------------------------------------------------- outputs checked first, written whole


def test_out_is_checked_before_any_work_and_written_atomically(tmp_path, monkeypatch):
    from genre_models.errors import DataError
    from genre_models.util import atomic_write

    clip = write_wav(tmp_path / "a.wav", synth_track("rock", 3.0, 1))
    model = str(saved_net5(tmp_path / "w"))
    scored = []
    monkeypatch.setattr("genre_models.stages.predict._score_chunk", lambda *a: scored.append(1))
    for out, why in ((tmp_path / "no" / "p.csv", "the folder"), ("/dev/full", "not a regular file")):
        r = CliRunner().invoke(main, ["predict", str(clip), "--model-uri", model, "--out", str(out)])
        assert r.exit_code == 2 and why in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output
    existing = tmp_path / "p.csv"
    existing.write_text("mine")
    r = CliRunner().invoke(main, ["predict", str(clip), "--model-uri", model, "--out", str(existing)])
    assert r.exit_code == 2 and "already exists; add --force to replace it" in r.stderr
    assert existing.read_text() == "mine" and scored == []  # nothing was scored for any of them

    def full(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(DataError, match=r"p.csv: disk full, nothing was written"):
        atomic_write(existing, full)
    assert existing.read_text() == "mine" and list(tmp_path.glob(".p.csv.tmp-*")) == []


# --------------------------------------------------------------------------- a scorer's outputs are data


def test_a_scorer_whose_outputs_are_not_numbers_gives_no_quality_figure():
    from genre_models.training.generation import generation_quality

    class Gen:  # a generated set of 4 clips' MFCCs
        mfcc = np.zeros((4, 44, 13), np.float32)
        labels = np.array([0, 1, 2, 3])

        def __len__(self):
            return 4

    with pytest.raises(ModelError, match="not finite numbers; its quality figure is not computed"):
        generation_quality(lambda x: torch.full((len(x), 10), float("nan")), Gen())
    assert generation_quality(lambda x: torch.eye(10)[:len(x)], Gen())["gen_quality_accuracy"] == 1.0


# --------------------------------------------------------------------------- round 4: root causes, one case a test


def test_numbers_and_params_from_the_store_are_checked_and_rendered(tmp_store, tmp_path):
    """Figures out of range cost their run's row; params and tags go through the one renderer,
    figures included (matplotlib's math syntax in a net's name)."""
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    for seed in range(3):
        fake_run(client, exp_id, "net5", seed, 0.5 + 0.05 * seed, stopped_epoch=3, right=5,
                 params={"repeat_groups": "2", "repeat_tracks": "[x](https://evil) <img src=x onerror=1>\nINFO"})
    for seed, acc in enumerate((-5.0, float("inf"), 1e308)):
        fake_run(client, exp_id, "net2", 10 + seed, acc)
    fake_run(client, exp_id, "net1", 20, 0.5, params={"n_test_tracks": "-790"})
    fake_run(client, exp_id, "net1", 21, 0.5, params={"n_test_tracks": "0"})
    fake_run(client, exp_id, "net1", 22, 0.5, params={"repeat_groups": "inf"})
    for seed in range(3):
        fake_run(client, exp_id, "m$\\undefinedmacro$", 30 + seed, 0.4, tags={"input_kind": "mfcc"}, right=4)
        fake_run(client, exp_id, "{" * 3000 + "$x$" + "\u200b\u061c", 40 + seed, 0.4, tags={"input_kind": "mfcc"})
    rep = write_report(EXP, out=str(tmp_path / "r" / "report.md"))  # with figures: names reach matplotlib
    assert rep.notes["malformed"] == {"test_accuracy outside [0, 1]": 3, "n_test_tracks not a count from 1 up": 2}
    text, page = Path(rep.path).read_text(), Path(rep.html).read_text()
    assert "Repeated recordings:** 2 group(s) (? tracks)" in text and "evil" not in text + page and "onerror" not in page
    assert "\u200b" not in text and "\u061c" not in text and "\\u200b\\u061c" in text
    assert "inf" not in "".join(t for t in text.split("```")[::2] if "|" in t).replace("info", "")
    assert (Path(rep.path).parent / "report_files" / "headline.png").stat().st_size > 1000


def test_decoding_is_bounded_before_allocation_and_a_track_is_a_regular_file(tmp_path):
    """A 20 KB WAV whose header says 1 Hz (resampled 22050x: 4 GB), a 12000x12000 PNG in 140 KB,
    a FIFO named like a track (which hung preprocessing), a float WAV at 1e30, a streaming
    writer's unknown size: each is its own skip with why, and the rest of the batch stands."""
    import struct

    from PIL import Image

    from genre_models.config import DataConfig
    from genre_models.stages.preprocess import preprocess
    from genre_models.stages.predict import predict

    from conftest import kaggle_tree

    root = kaggle_tree(tmp_path / "d", per_genre=3, seconds=2.0)
    rock = root / "Data" / "genres_original" / "rock"
    n = 20_000
    (rock / "rock.00050.wav").write_bytes(b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, 1, 1, 1, 8) + b"data" + struct.pack("<I", n) + (bytes(range(256)) * 80)[:n])
    os.mkfifo(rock / "rock.00051.wav")
    import soundfile as sf
    sf.write(rock / "rock.00052.wav", np.full(44100, 1e30, dtype=np.float32), 22050, subtype="FLOAT")
    stream = write_wav(rock / "rock.00053.wav", synth_track("rock", 2.0, 9)).read_bytes()
    at = stream.index(b"data") + 4
    (rock / "rock.00053.wav").write_bytes(stream[:at] + b"\xff\xff\xff\xff" + stream[at + 4:])
    images = root / "Data" / "images_original" / "rock"
    images.mkdir(parents=True)
    Image.new("RGB", (12000, 12000)).save(images / "rock00000.png")
    t0 = time.monotonic()
    res, _ = preprocess(DataConfig(data_dir=str(root), cache_dir=str(tmp_path / "cache"), jobs=2))
    assert time.monotonic() - t0 < 120
    why = dict(line.split(": ", 1) for line in res.skipped)
    why = {k.rsplit("/", 1)[-1]: v for k, v in why.items()}
    assert why["rock.00050.wav"] == "sample rate 1 Hz in its header, outside 1000-768000 Hz: no recording"
    assert why["rock.00051.wav"] == "not a regular file (a FIFO, device or socket): not read"
    assert why["rock.00052.wav"] == "samples up to 1e+30, far beyond full scale (1.0): not audio"
    assert "rock.00053" in res.store.tracks.track_id.tolist()  # a streaming writer's length: kept, as predict keeps it
    assert len(res.store.tracks) == 31
    out = predict([str(rock)], str(saved_net5(tmp_path / "w")), jobs=1)
    skipped = {Path(f).name: r for f, r in out.skipped}
    assert skipped["rock.00050.wav"].startswith("sample rate 1 Hz") and "regular file" in skipped["rock.00051.wav"]
    assert "rock.00053.wav" in [Path(c.file).name for c in out.clips]


@pytest.mark.parametrize("args, option", [
    (["train", "--net", "net1", "--data-dir", ".", "--image-size", "100000"], "--image-size"),
    (["synth", "--out", "x", "--seconds", "1e9"], "--seconds"), (["synth", "--out", "x", "--seconds", "nan"], "--seconds"),
    (["synth", "--out", "x", "--seconds", "inf"], "--seconds"), (["synth", "--out", "x", "--seed", "-1"], "--seed"),
    (["calibrate", "--tracks", "1000000000"], "--tracks"), (["gan", "--data-dir", ".", "--beta1", "5"], "--beta1"),
    (["perf", "train", "--batches", "0"], "--batches"), (["perf", "train", "--batch-size", "0"], "--batch-size"),
    (["perf", "train", "--image-size", "0"], "--image-size"), (["perf", "preprocess", "--jobs", "-1"], "--jobs"),
    (["perf", "gan", "--steps", "0"], "--steps"), (["train", "--net", "net5", "--data-dir", ".", "--lr", "nan"], "--lr")])
def test_numeric_options_are_bounded(args, option):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and f"Invalid value for '{option}'" in r.output and "Traceback" not in r.output


def test_every_numeric_option_of_every_command_has_both_bounds():
    import click

    from benchmark.cli.bounds import numeric_type

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*path, name])
        for p in cmd.params:
            kind = numeric_type(p)
            if kind is not None:
                yield " ".join(path), p.name, kind

    found = list(walk(main, []))
    assert len(found) > 90
    assert [(c, n) for c, n, k in found if k.min is None or k.max is None] == []


@pytest.mark.parametrize("var, value", [("GENRE_BENCH_HEARTBEAT_S", "abc"), ("GENRE_BENCH_STORE_WAIT_S", "abc"),
                                        ("GENRE_BENCH_STORE_WAIT_S", "nan"), ("GENRE_BENCH_STORE_TIMEOUT_S", "nan"),
                                        ("GENRE_BENCH_THREADS", "²"), ("GENRE_BENCH_THREADS", "3000"),
                                        ("GENRE_BENCH_STALE_AFTER_S", "-1")])
def test_environment_variables_are_read_by_one_parser_that_says_one_line(var, value):
    r = CliRunner(env={var: value}).invoke(main, ["nets"])
    one_line_error(r, f"${var} must be")


def test_threads_above_the_cores_are_capped(monkeypatch):
    from genre_models.training import runtime

    monkeypatch.setenv("GENRE_BENCH_THREADS", "1000")
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    assert runtime.fair_threads() == 2


def test_names_with_newlines_or_escapes_print_as_their_escapes(tmp_path):
    """A clip named ``x\\nINFO fake`` or holding ESC once printed a fake log line and drove the terminal."""
    from conftest import kaggle_tree

    root = kaggle_tree(tmp_path / "d", per_genre=2, seconds=2.0)
    gdir = root / "Data" / "genres_original"
    (gdir / "rock" / "evil\nINFO all clean\x1b[2J.txt").write_text("x")
    args = ["preprocess", "--data-dir", str(root), "--cache-dir", str(tmp_path / "c"), "--no-track"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output[-2000:]
    assert "\x1b" not in r.output and not [line for line in r.output.splitlines() if line.startswith("INFO all")]
    assert "\\nINFO all clean\\x1b[2J" in r.output
    (gdir / "jazz\nINFO fake genre").mkdir()  # an error that names it is one line too
    r = CliRunner().invoke(main, args)
    one_line_error(r, "jazz\\nINFO fake genre")


def test_one_bad_value_costs_one_line_elsewhere_too(tmp_store, tmp_path, monkeypatch):
    """A 300-character experiment name; a dataset of one genre for svm; 200 folds on 30 tracks."""
    from conftest import kaggle_tree

    monkeypatch.chdir(tmp_path)
    client = mlflow.MlflowClient()
    long = "e" * 300
    exp_id = client.create_experiment(long)
    for seed in range(3):
        fake_run(client, exp_id, "net5", seed, 0.5)
    rep = write_report(long, figures=False)
    assert len(Path(rep.path).parent.name) < 120
    one = kaggle_tree(tmp_path / "one", per_genre=6, seconds=2.0, genres=["rock"])
    r = CliRunner().invoke(main, ["train", "--net", "svm", "--data-dir", str(one), "--cache-dir", str(tmp_path / "c")])
    one_line_error(r)
    few = kaggle_tree(tmp_path / "few", per_genre=3, seconds=2.0)
    r = CliRunner().invoke(main, ["sweep", "--data-dir", str(few), "--nets", "net5", "--splits", "kfold", "--folds", "200",
                                  "--seeds", "1", "--dry-run", "--cache-dir", str(tmp_path / "c")])
    one_line_error(r, "--folds 200 is more than the 30 usable tracks")
    r = CliRunner().invoke(main, ["sweep", "--data-dir", str(few), "--nets", "net5", "--splits", "kfold", "--folds", "10",
                                  "--seeds", "1", "--dry-run", "--cache-dir", str(tmp_path / "c")])
    assert r.exit_code == 0 and "leaves about 3.0 test tracks a fold" in r.stderr, r.output[-2000:]
