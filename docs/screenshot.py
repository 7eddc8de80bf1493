"""Open the MLflow UI of a genre-bench store in headless Chromium: dump a page's DOM, or take
the README's screenshot of the compare view.

    python docs/screenshot.py --tracking-uri sqlite:///mlflow.db --out docs/mlflow-compare.png

It starts `mlflow server` on a free 127.0.0.1 port over the store (stopped afterwards), finds the
newest `track`-split runs of net5 and net6, and photographs MLflow's compare view of them. Needs
Chromium (Debian: `apt-get install chromium`). The test suite uses `chromium()` for its browser test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

#: What Chromium needs on a machine without a network or a display (its background services
#: would otherwise try to reach Google's hosts).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def chromium(url: str, profile: Path, *args: str, budget_ms: int = 30000) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``url`` with a fresh profile; ``args`` e.g. ``--dump-dom``."""
    return subprocess.run([chromium_path(), *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                           *args, url], capture_output=True, text=True, timeout=180)


def compare_url(base: str, experiment: str, tracking_uri: str) -> str:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    ids = []
    for net in ("net5", "net6"):
        runs = client.search_runs([exp.experiment_id], f"tags.net = '{net}' and tags.split = 'track'",
                                  order_by=["attributes.start_time DESC"], max_results=3)
        ids += [r.info.run_id for r in runs if r.info.status == "FINISHED"]
    query = urllib.parse.quote(json.dumps(ids)), urllib.parse.quote(json.dumps([exp.experiment_id]))
    return f"{base}/#/compare-runs?runs={query[0]}&experiments={query[1]}"


def main() -> None:
    from genre_models.tracking.server import LocalServer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    ap.add_argument("--experiment", default="gtzan-genre-benchmark")
    ap.add_argument("--out", default="docs/mlflow-compare.png")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalServer(a.tracking_uri, Path(tmp) / "server") as server:
        url = compare_url(server.uri, a.experiment, a.tracking_uri)
        shot = chromium(url, Path(tmp) / "profile", "--window-size=1600,1100", f"--screenshot={Path(a.out).resolve()}")
    print(url if shot.returncode == 0 else shot.stderr[-2000:])


if __name__ == "__main__":
    main()
