"""Published GTZAN figures, each with its protocol, so a reader of the report sees where a
figure under one of genre-bench's splits stands. A figure only compares with a block of the
same protocol: the study's with ``random`` (a leaky protocol), the fault-filtered split's with
``filtered``, a 10-fold cross-validation's with ``kfold``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    accuracy: float
    what: str
    protocol: str
    split: str  # the genre-bench split with the same protocol
    source: str


PUBLISHED: tuple[Published, ...] = (
    Published(0.7954, "the study's net5 (LSTM on MFCCs of 1 s segments)",
              "70/20/10 at random over 1 s segments, one run: segments of one song on both sides", "random", "the study"),
    Published(0.8291, "the study's net6 (net5 with WaveGAN augmentation)", "as net5", "random", "the study"),
    Published(0.534, "MFCC features + SVM", "the fault-filtered split (443/197/290 tracks; no artist on two sides)",
              "filtered", "MARBLE benchmark table (Yuan et al., NeurIPS 2023)"),
    Published(0.776, "VGGish embeddings + SVM", "the fault-filtered split", "filtered",
              "MARBLE benchmark table (Yuan et al., NeurIPS 2023)"),
    Published(0.61, "timbre, rhythm and pitch features + GMM",
              "10-fold cross-validation over the 1,000 tracks (repeated recordings not kept together)", "kfold",
              "Tzanetakis & Cook, IEEE TSAP 2002"),
)

NOTE = ("GTZAN figures depend on the protocol as much as on the model: the same system scores markedly "
        "lower once no artist sits on both sides of the split (Sturm 2013; Kereliuk, Sturm & Larsen 2015). "
        "Read a figure beside the split with its protocol. genre-bench's `kfold`, unlike Tzanetakis & "
        "Cook's, keeps repeated recordings in one fold.")
