"""``benchmark perf predict``: ``benchmark predict`` on one clip and on a folder of many, each a
fresh command as a user runs it, side by side: how many times one clip's cost the folder takes.

One clip's command is mostly start-up (imports) and loading the net; a folder pays those once,
then decodes its clips in parallel and scores their segments in batches. The net is an
untrained one of the registry's, saved as genre-bench saves nets (a card and plain weights) in
a folder that ``--model-uri`` names directly; the clips are generated, 30 s each.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _command(paths: list[str], model: str) -> list[str]:
    return [sys.executable, "-m", "benchmark", "-q", "predict", *paths, "--model-uri", model]


def bench_predict(net: str = "net5", clips: int = 100, seconds: float = 30.0, repeats: int = 2) -> dict:
    """Seconds of ``benchmark predict`` on one clip and on ``clips`` clips, taking turns
    ``repeats`` times (the median of each), and their ratio."""
    from genre_models.config import FeatureConfig
    from genre_models.data.synth import SynthConfig, write_synthetic_gtzan
    from genre_models.models.registry import get_net
    from genre_models.models.saved import save_net, shape_of

    with tempfile.TemporaryDirectory(prefix="genre-bench-perf-predict-") as tmp:
        spec, features = get_net(net), FeatureConfig()
        model = spec.build(shape_of(features), "flatten")
        save_net(Path(tmp) / "net", spec, model, features, "flatten", 1, "perf")
        per_genre = -(-clips // 10)
        write_synthetic_gtzan(SynthConfig(out=f"{tmp}/clips", tracks_per_genre=per_genre, seconds=seconds, repeats=0))
        files = sorted(str(p) for p in Path(tmp, "clips").rglob("*.wav"))[:clips]
        folder = Path(tmp) / "folder"
        folder.mkdir()
        for f in files:
            Path(f).rename(folder / Path(f).name)
        cases = {"one": _command([str(folder / Path(files[0]).name)], f"{tmp}/net"),
                 "many": _command([str(folder)], f"{tmp}/net")}
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(repeats):
            for name, cmd in cases.items():
                t0 = time.perf_counter()
                done = subprocess.run(cmd, capture_output=True, text=True)
                times[name].append(time.perf_counter() - t0)
                if done.returncode != 0:
                    raise RuntimeError(f"benchmark predict failed: {done.stderr.strip().splitlines()[-1:]}")
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"net": net, "clips": len(files), "clip_seconds": seconds, "one_clip_s": round(med["one"], 2),
            f"{len(files)}_clips_s": round(med["many"], 2), "many_over_one": round(med["many"] / med["one"], 2),
            "per_extra_clip_s": round((med["many"] - med["one"]) / max(len(files) - 1, 1), 3)}
