"""Open the MLflow UI of a genre-bench store in headless Chromium: dump a page's DOM, or take
the README's screenshot of the nets side by side.

    python docs/screenshot.py --tracking-uri sqlite:///mlflow.db --out docs/mlflow-nets.png

It starts `mlflow server` on a free 127.0.0.1 port over the store (stopped afterwards) and
photographs the view a sweep saved for the split (`tracking.views`): the split's training runs
grouped by net, in the chart view, with each net's mean test accuracy over its runs. Needs
Chromium (Debian: `apt-get install chromium`). The test suite uses `chromium()` for its browser test.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
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


def view_url(base: str, experiment: str, tracking_uri: str, split: str) -> str:
    """The split's saved view (a sweep saves one per split; saved again here, in case)."""
    import mlflow

    from genre_models.tracking.views import save_nets_view, view_path

    client = mlflow.MlflowClient(tracking_uri)
    exp_id = client.get_experiment_by_name(experiment).experiment_id
    save_nets_view(client, exp_id, split)
    return base + view_path(exp_id, split)


def main() -> None:
    from genre_models.tracking.server import LocalServer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    ap.add_argument("--experiment", default="gtzan-genre-benchmark")
    ap.add_argument("--split", default="track")
    ap.add_argument("--out", default="docs/mlflow-nets.png")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalServer(a.tracking_uri, Path(tmp) / "server") as server:
        url = view_url(server.uri, a.experiment, a.tracking_uri, a.split)
        # The charts draw after their data arrives: give the page two minutes of virtual time.
        shot = chromium(url, Path(tmp) / "profile", "--window-size=1800,1000", f"--screenshot={Path(a.out).resolve()}",
                        budget_ms=120000)
    print(url if shot.returncode == 0 else shot.stderr[-2000:])


if __name__ == "__main__":
    main()
