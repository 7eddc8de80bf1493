"""What a feature store holds, in counts and words, pure: the repeated recordings, each part's
tracks, segments and images under a split, the genres a part lacks, and the warnings a user
reads before training on it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genre_models.config import SplitConfig
from genre_models.data.splits import PARTS
from genre_models.data.store import FeatureStore
from genre_models.genres import GENRES


def repeat_groups(store: FeatureStore) -> list[str]:
    """One line per group of repeated recordings: its members, each with its best similarity
    to another member, e.g. "country.00012 = country.00044 (0.97) = ... (3 tracks)"."""
    tracks = store.tracks[store.tracks.repeat_group != ""]
    out = []
    for head, members in tracks.groupby("repeat_group", sort=True):
        rest = members[members.track_id != head].sort_values("track_id")
        names = [head] + [f"{t} ({float(s):.2f})" for t, s in zip(rest.track_id, rest.repeat_score)]
        out.append(f"{' = '.join(names)} ({len(members)} tracks, kept on one side of every split)")
    return out


def repeat_counts(store: FeatureStore) -> dict[str, int]:
    """``repeat_groups`` (groups of repeated recordings) and ``repeat_tracks`` (their members)."""
    group = store.tracks.repeat_group
    return {"repeat_groups": int(group[group != ""].nunique()), "repeat_tracks": int((group != "").sum())}


def split_counts(store: FeatureStore, split: SplitConfig) -> dict[str, int]:
    """Tracks, segments and images per part (and the totals), for logging as parameters; per
    genre, ``genre_counts``."""
    tracks = store.tracks
    out: dict[str, int] = {"tracks_total": len(tracks), "skipped_files": int((store.manifest.status == "skipped").sum()),
                           **repeat_counts(store)}
    seg_parts = store.parts("mfcc", split)
    img_parts = store.parts("image", split)
    for p, name in enumerate(PARTS):
        out[f"segments_{name}"] = int((seg_parts == p).sum())
        out[f"images_{name}"] = int((img_parts == p).sum())
        out[f"tracks_{name}"] = int(len(np.unique(store.seg_track[seg_parts == p])))
    return out


def _sample_genres(store: FeatureStore) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's and each image's genre: (n_segments,), (n_images,)."""
    genre = store.tracks.genre.to_numpy()
    if not len(genre):
        return np.array([]), np.array([])
    return genre[store.seg_track], genre[store.img_track]


#: What a genre missing from one part of a split means for the runs on it.
_MISSING_MEANS = {
    "train": "no net learns {genres}, yet {their} test tracks are scored as usual, so none of them can be right",
    "val": "early stopping and the choice of a registered run never see {genres}",
    "test": "{genres} {is_are} not tested: accuracy and macro-F1 are over the genres the test part holds",
}


def missing_words(part: str, split: SplitConfig, missing: list[str]) -> str:
    """One line: a part of ``split`` holds none of ``missing``, and what that means for a run."""
    names = ", ".join(missing)
    means = _MISSING_MEANS[part].format(genres=names, their="its" if len(missing) == 1 else "their",
                                        is_are="is" if len(missing) == 1 else "are")
    return f"the {part} part of {split.words} has no {names}: {means}"


def coverage_warnings(store: FeatureStore, split: SplitConfig) -> list[str]:
    """What is missing, in words: genres with no usable track (no net learns or is tested on
    them), and parts of ``split`` that hold none of a genre the dataset has, or nothing at all."""
    tracks = store.tracks
    present = [g for g in GENRES if g in set(tracks.genre)]
    out = [f"genre {g} has no usable track: no net learns it or is tested on it" for g in GENRES if g not in present]
    seg_parts, (seg_genre, _) = store.parts("mfcc", split), _sample_genres(store)
    for p, name in enumerate(PARTS):
        missing = [g for g in present if not ((seg_parts == p) & (seg_genre == g)).any()]
        if missing == present:
            out.append(f"the {name} part of {split.words} is empty")
        elif missing:
            out.append(missing_words(name, split, missing))
    return out


def genre_counts(store: FeatureStore, split: SplitConfig) -> pd.DataFrame:
    """One row per genre: its tracks, and its segments and images in each part."""
    tracks = store.tracks
    seg_parts, img_parts = store.parts("mfcc", split), store.parts("image", split)
    seg_genre, img_genre = _sample_genres(store)
    rows = []
    for g in GENRES:
        row = {"genre": g, "tracks": int((tracks.genre == g).sum())}
        for p, name in enumerate(PARTS):
            row[f"segments_{name}"] = int(((seg_parts == p) & (seg_genre == g)).sum())
            row[f"images_{name}"] = int(((img_parts == p) & (img_genre == g)).sum())
        rows.append(row)
    return pd.DataFrame(rows)
