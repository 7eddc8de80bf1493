"""What a person sees, checked in a real browser: the MLflow view a sweep saves and the report's
HTML page, opened in headless Chromium (Debian's `chromium`; `.ci/run` installs it where it can,
and without it these tests skip and say why). No browser is downloaded at run time.

A small finished sweep is reported, and the report's last lines are what a newcomer copies: the
`mlflow ui` command and the view's address. The test runs that command (on a free port) and
opens that address; it opens report.html from a local HTTP server and checks from inside the
page that its headline figure loaded, that every link resolves, and that nothing on it runs.
Screenshots go to the test's tmp folder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmark.cli import main

from conftest import alive_in_group, cores, docs_screenshot, free_port

SHOT = docs_screenshot()
CHROMIUM = SHOT.chromium_path()
NETS = ("net1", "net5", "svm")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium, none found on PATH (Debian: apt-get install "
                                                          "chromium; .ci/run installs it where it runs as root)")]


@pytest.fixture(scope="module")
def reported(demo_dir, tmp_path_factory) -> dict:
    """A finished sweep of three nets on the demo data, and its report: what `benchmark report` printed."""
    root = tmp_path_factory.mktemp("browser")
    uri = f"sqlite:///{root}/mlflow.db"
    common = ["--tracking-uri", uri]
    with cores(exclusive=False):
        swept = CliRunner().invoke(main, ["sweep", "--data-dir", str(demo_dir), "--grid", "demo", "--nets", ",".join(NETS),
                                          "--seeds", "1", "--splits", "track", "--max-epochs", "1", "--no-register",
                                          "--no-system-metrics", "--cache-dir", str(root / "cache"), *common])
        assert swept.exit_code == 0, swept.output[-3000:]
        rep = CliRunner().invoke(main, ["report", "--out", str(root / "report" / "report.md"), *common])
    assert rep.exit_code == 0, rep.output[-3000:]
    return {"root": root, "uri": uri, "stdout": rep.stdout}


def test_the_reports_last_lines_are_its_path_and_the_views_address(reported):
    *_, path_line, view_line = reported["stdout"].strip().splitlines()
    root = reported["root"]
    assert path_line == f"report: {root}/report/report.md (open {root}/report/report.html in a browser)"
    m = re.fullmatch(r"nets side by side on `track`: run `mlflow ui --backend-store-uri (\S+) --port 5000`, then open "
                     r"http://127\.0\.0\.1:5000(/#/experiments/\d+/runs\?viewStateShareKey=genre-bench-nets-track"
                     r"&compareRunsMode=CHART)", view_line)
    assert m and m.group(1) == f"sqlite:///{root}/mlflow.db", view_line


def _ui(command: str, port: int) -> subprocess.Popen:
    """The printed `mlflow ui` command, on ``port`` (5000 may be taken), in a process group of its own."""
    args = command.split()
    args[args.index("--port") + 1] = str(port)
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")})
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            assert proc.poll() is None, "mlflow ui exited at start"
            time.sleep(0.5)
    raise AssertionError("mlflow ui did not answer within 120 s")


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process group by its leader's pid, SIGKILL after 20 s; nothing of it is left."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + wait
        while alive_in_group(proc.pid) and time.time() < deadline:
            proc.poll()
            time.sleep(0.2)
    proc.wait(timeout=10)
    assert not alive_in_group(proc.pid)


def _not_blank(png: Path) -> int:
    """How many distinct colours a screenshot has (a blank or broken page has one or two)."""
    from PIL import Image

    with Image.open(png) as im:
        return len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0))


def test_the_printed_view_shows_the_splits_runs_grouped_by_net_in_two_bar_charts(reported, tmp_path):
    command, route = re.search(r"run `(mlflow ui [^`]+)`, then open http://127\.0\.0\.1:5000(\S+)",
                               reported["stdout"]).groups()
    port = free_port()
    with cores(exclusive=False):
        ui = _ui(command, port)
        try:
            url = f"http://127.0.0.1:{port}{route}"
            # The UI draws a chart card only once it is in the window: a tall window draws them all.
            page = SHOT.chromium(url, tmp_path / "profile", "--window-size=1600,2000", "--dump-dom", budget_ms=60000)
            shot = SHOT.chromium(url, tmp_path / "profile2", "--window-size=1600,1000",
                                 f"--screenshot={tmp_path / 'view.png'}", budget_ms=60000)
        finally:
            _stop(ui)
    assert page.returncode == 0 and shot.returncode == 0, page.stderr[-2000:] + shot.stderr[-2000:]
    dom = page.stdout
    assert "tags.stage = 'train' and tags.split = 'track'" in dom  # the split's training runs, and only they
    assert "Group by: net" in dom and all(f"net: {net}, epochs: " in dom for net in NETS)  # a group per net
    assert "Test scores by net" in dom  # the view's own chart section comes first, with its two bar charts
    assert _cards(dom)[:2] == [("test_accuracy", len(NETS)), ("test_track_accuracy", len(NETS))]  # a bar a net
    assert _not_blank(tmp_path / "view.png") > 20


def _cards(dom: str) -> list[tuple[str, int]]:
    """The chart cards on the page, in order: each one's title and how many bars it draws."""
    marker = 'data-testid="experiment-view-compare-runs-card"'
    starts = [m.start() for m in re.finditer(re.escape(marker), dom)] + [len(dom)]
    out = []
    for a, b in zip(starts, starts[1:]):
        card = dom[a + len(marker):b]
        title = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", card.split(">", 1)[1])).strip().split(" ")[0]
        out.append((title, len(re.findall(r'<g class="point"', card)) if "barlayer" in card else 0))
    return out


HARNESS = """<!doctype html><html><body><iframe id="r" src="report.html" style="width:1400px;height:1000px"></iframe>
<script>
document.getElementById("r").addEventListener("load", async () => {
  const d = document.getElementById("r").contentDocument;
  const images = [...d.images].map(i => ({alt: i.alt, loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth}));
  const links = await Promise.all([...d.querySelectorAll("a[href]")].map(async a => {
    const href = a.getAttribute("href");
    if (href.startsWith("#")) return {href, ok: !!d.getElementById(decodeURIComponent(href.slice(1)))};
    if (/^[a-z]+:/i.test(href)) return {href, ok: null};
    try { const r = await fetch(new URL(href, d.baseURI)); return {href, ok: r.ok, status: r.status}; }
    catch (e) { return {href, ok: false}; }
  }));
  const handlers = [...d.querySelectorAll("*")].filter(e => [...e.attributes].some(x => /^on/i.test(x.name))).length;
  document.body.setAttribute("data-result", JSON.stringify({images, links, scripts: d.scripts.length, handlers,
    embeds: d.querySelectorAll("iframe,object,embed,form").length}));
});
</script></body></html>"""


def test_the_report_page_loads_its_figures_resolves_every_link_and_runs_nothing(reported, tmp_path):
    folder = reported["root"] / "report"
    html = (folder / "report.html").read_text()
    assert not re.search(r"<script|\son[a-z]+\s*=|javascript:", html, re.I)  # as written: no script, no handler
    (folder / "check.html").write_text(HARNESS)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                               str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/report.html", timeout=2).close()
                break
            except OSError:
                assert time.time() < deadline, "the page's server did not start"
                time.sleep(0.2)
        page = SHOT.chromium(f"http://127.0.0.1:{port}/check.html", tmp_path / "profile", "--dump-dom", budget_ms=30000)
        shot = SHOT.chromium(f"http://127.0.0.1:{port}/report.html", tmp_path / "profile2", "--window-size=1400,1000",
                             f"--screenshot={tmp_path / 'report.png'}", budget_ms=15000)
    finally:
        _stop(server)
    assert page.returncode == 0 and shot.returncode == 0, page.stderr[-2000:]
    found = re.search(r'data-result="([^"]*)"', page.stdout)
    assert found, page.stdout[-3000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    headline = [i for i in result["images"] if i["alt"].startswith("test accuracy per net")]
    assert headline and headline[0]["loaded"] and headline[0]["width"] > 300, result["images"]
    assert all(i["loaded"] for i in result["images"]), result["images"]
    local = [link for link in result["links"] if link["ok"] is not None]
    assert len(local) > 10 and [link for link in local if not link["ok"]] == []
    assert result["scripts"] == 0 and result["handlers"] == 0 and result["embeds"] == 0
    assert _not_blank(tmp_path / "report.png") > 20
