"""The GTZAN label set. Label ids come from this sorted tuple, never from directory walk order."""

GENRES: tuple[str, ...] = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)
assert list(GENRES) == sorted(GENRES), "GENRES must stay sorted: label ids are positions in it"

GENRE_TO_ID: dict[str, int] = {g: i for i, g in enumerate(GENRES)}
N_CLASSES = len(GENRES)
