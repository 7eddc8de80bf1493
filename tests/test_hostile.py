"""A stranger's run can spoil its own row, never a colleague's report or machine: text from a
shared store rendered in every output format, runs with malformed tags, cards that ask for too
much, a batch with one bad clip, outputs written atomically, and stores that do not answer."""

from __future__ import annotations

import csv
import os
import errno
import json
import re
import socket
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
from genre_models.models.registry import get_net
from genre_models.models.saved import load_net, probabilities, save_net, shape_of
from genre_models.stages.report import write_report

from conftest import fake_run, write_wav

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


def _saved(folder: Path) -> Path:
    spec, features = get_net("net5"), FeatureConfig()
    save_net(folder, spec, spec.build(shape_of(features), "flatten"), features, "flatten", 1, "test")
    return folder


def test_a_card_is_checked_for_cost_and_sense_before_anything_is_allocated(tmp_path):
    folder = _saved(tmp_path / "w")
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
    res = predict([str(clips)], str(_saved(tmp_path / "w")), jobs=1)
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
    model = str(_saved(tmp_path / "w"))
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


# --------------------------------------------------------------------------- a store that does not answer


def test_a_store_that_does_not_answer_is_one_line_within_its_deadline(tmp_path, demo_dir):
    with socket.socket() as silent:  # accepts connections and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = {"GENRE_BENCH_STORE_TIMEOUT_S": "2"}
        for args in (["report"], ["sweep", "--data-dir", str(demo_dir), "--grid", "demo", "--nets", "net5",
                                  "--seeds", "1", "--splits", "track", "--dry-run"],
                     ["predict", str(demo_dir), "--model-uri", "runs:/0123456789abcdef/model"]):
            t0 = time.monotonic()
            r = CliRunner(env=env).invoke(main, [*args, "--tracking-uri", uri])
            assert r.exit_code == 2 and time.monotonic() - t0 < 30, (args, r.output)
            assert r.stderr.strip().splitlines()[-1] == (
                f"error: tracking server {uri} did not answer within 2 s; check --tracking-uri, or set "
                "GENRE_BENCH_STORE_TIMEOUT_S to wait longer"), (args, r.stderr)


def test_a_download_leaves_nothing_in_the_temp_folder_even_when_refused(tmp_store, tmp_path):
    import tempfile

    from genre_models.tracking.models import fetch_net

    good, bad = _saved(tmp_path / "good"), _saved(tmp_path / "bad")
    (bad / "spec.json").write_text('{"format": "genre-bench-net/1", "net": "net5", "features": []}')
    ids = []
    for folder in (good, bad):
        with mlflow.start_run() as run:
            mlflow.set_tag("net", "net5")
            mlflow.log_artifacts(str(folder), "weights")
        ids.append(run.info.run_id)
    before = set(os.listdir(tempfile.gettempdir()))
    assert fetch_net(f"runs:/{ids[0]}").spec.name == "net5"
    with pytest.raises(ModelError, match="the card says net5 is a None net"):
        fetch_net(f"runs:/{ids[1]}")
    assert set(os.listdir(tempfile.gettempdir())) - before == set()


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
