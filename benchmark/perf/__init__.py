"""``benchmark perf``: benchmarks, one module per measurement. Every figure is a ratio of two
things measured side by side in one process (these machines are noisy); absolute numbers are
printed for context only.

* ``preprocess``: the feature pipeline against a naive librosa loop; the repeat search on 1000 clips
* ``train``: the suite's training loop against a bare PyTorch loop; the share of the device's peak
* ``gan``: WaveGAN steps/s in fp32 and bf16; the paper-size model's cost
* ``study``: every stage of a grid at full size, and the projected wall time of the whole grid
* ``precision``: bf16 against fp32 side by side, and what ``--precision auto`` picks here
* ``sweep``: one tiny sweep local, with worker processes, and on Ray
* ``contention``: training processes sharing the cores, with the thread budget and without
* ``startup``: how fast the CLI starts
* ``loops``: the loops and yardsticks they share
"""
