"""Rates measured on a GPU this project cannot assume a user has: what a figure "on a GPU" uses on
a machine without one (the sweep's projection, the report's hours to a decision)."""

from __future__ import annotations

#: Rates measured on one NVIDIA H200 through this workplace's device tool (2026-11-26, fp32, the split
#: resident on the GPU; docs/performance.md). Training samples a second by input kind: image nets at
#: 180x180 batch 32 (net2's figure), MFCC and raw nets at batch 32 (net5's); the WaveGAN's steps a
#: second by model size (``d``); generation of the study's 27,980 clips in about 6 s.
H200 = {"image": 2773.0, "mfcc": 5007.0, "raw": 5007.0, "gan_steps_per_s": {64: 1 / 0.17, 16: 14.2},
        "clips_per_s_generated": 4663.0, "measured": "2026-11-26"}
