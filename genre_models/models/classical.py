"""The classical baselines: scikit-learn models on a clip's summary statistics, fitted in one
call, their hyper-parameters chosen on the validation part, and stored without pickle.

* ``svm``: an RBF support-vector machine; C and gamma from a grid, chosen on validation.
* ``logreg``: a linear probe (multinomial logistic regression); C from a grid, chosen on validation.

Both standardise the statistics with the *training* part's mean and variance (a
``StandardScaler`` in the pipeline), as the nets standardise their MFCCs. Probabilities: the
logistic regression's own; the SVM's are a softmax over its one-vs-rest decision values, a
score that sums to one, not a calibrated probability (scikit-learn's Platt scaling costs five
more fits and is deprecated there).

**Stored as data.** A fitted pipeline is written with skops and read back with skops' default
trusted types only (scikit-learn's and numpy's own); a file naming any other type, or not a
skops file at all, is refused in one line and nothing of it runs.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genre_models.errors import DataError, ModelError
from genre_models.genres import GENRES, N_CLASSES

#: Hyper-parameter grids, searched on the validation part (ties: the first, i.e. the simplest).
GRIDS = {
    "svm": {"C": (0.1, 1.0, 10.0, 100.0), "gamma": (0.1, 1.0, 10.0)},  # gamma in units of 1 / n_features
    "logreg": {"C": (0.01, 0.1, 1.0, 10.0)},
}


#: The most samples an SVM is fitted (and chosen) on: kernel machines cost O(n^2) and more, and all of
#: GTZAN's 20,000 training segments would take minutes a fit. Spread evenly over each part's
#: tracks (every track keeps at least one segment); the linear probe uses every sample.
MAX_SAMPLES = {"svm": {"train": 6000, "val": 3000}, "logreg": {"train": None, "val": None}}


@dataclass
class Fitted:
    """A fitted baseline and how its hyper-parameters were chosen."""

    model: object  # sklearn Pipeline(scale, clf)
    chosen: dict  # the chosen hyper-parameters
    val_accuracy: float
    samples: int  # training samples it was fitted on
    tried: list = field(default_factory=list)  # (params, validation accuracy) for every grid point


def grid_size(kind: str) -> int:
    return int(np.prod([len(v) for v in GRIDS[kind].values()]))


def spread(tracks: np.ndarray, cap: int | None) -> np.ndarray:
    """Rows of a part to fit on: all of them, or at most ``cap`` spread evenly over each track's
    samples (deterministic; at least one per track)."""
    rows = np.arange(len(tracks))
    if cap is None or len(rows) <= cap:
        return rows
    order = np.argsort(tracks, kind="stable")
    uniq, start, count = np.unique(tracks[order], return_index=True, return_counts=True)
    per = max(1, cap // len(uniq))
    keep = [order[s + np.unique(np.linspace(0, c - 1, min(per, c)).round().astype(int))] for s, c in zip(start, count)]
    return np.sort(np.concatenate(keep))


def n_parameters(model) -> int:
    """The numbers a fitted pipeline holds: scaler statistics and the classifier's arrays."""
    arrays = [getattr(step, a) for _, step in model.steps
              for a in ("mean_", "scale_", "coef_", "intercept_", "support_vectors_", "dual_coef_")
              if isinstance(getattr(step, a, None), np.ndarray)]
    return int(sum(a.size for a in arrays))


def build(kind: str, params: dict, n_features: int, seed: int):
    """An unfitted pipeline: standardise, then the classifier with ``params``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if kind == "svm":
        clf = SVC(C=params["C"], gamma=params["gamma"] / n_features, kernel="rbf", decision_function_shape="ovr",
                  random_state=seed)
    else:
        clf = LogisticRegression(C=params["C"], max_iter=5000, random_state=seed)
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


def probabilities(model, x: np.ndarray) -> np.ndarray:
    """(N, n_features) -> (N, 10): the classifier's probabilities (logistic regression) or a
    softmax over its decision values (SVM); a genre the training part lacked gets 0."""
    clf = model.steps[-1][1]
    if hasattr(clf, "predict_proba") and not hasattr(clf, "support_vectors_"):
        p = model.predict_proba(x)
    else:
        d = model.decision_function(x)
        d = d[:, None] if d.ndim == 1 else d  # (N, classes)
        if d.shape[1] == 1:  # two classes: one decision value for the second
            d = np.concatenate([-d, d], axis=1)
        e = np.exp(d - d.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
    out = np.zeros((x.shape[0], N_CLASSES), np.float32)
    out[:, np.asarray(clf.classes_, dtype=int)] = p
    return out


def fit_classical(kind: str, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                  seed: int, train_tracks: np.ndarray, val_tracks: np.ndarray) -> Fitted:
    """Every grid point fitted on the training part (at most ``MAX_SAMPLES``, spread over its
    tracks) and scored on validation by sample accuracy; the best is kept as fitted."""
    grid, cap = GRIDS[kind], MAX_SAMPLES[kind]
    present = np.unique(y_train)
    if present.size < 2:
        held = ", ".join(GENRES[int(g)] for g in present) or "none"
        raise DataError(f"the training part holds {present.size} genre ({held}): {kind} needs at least two to tell apart")
    tr, va = spread(np.asarray(train_tracks), cap["train"]), spread(np.asarray(val_tracks), cap["val"])
    x_train, y_train, x_val, y_val = x_train[tr], y_train[tr], x_val[va], y_val[va]
    tried, best = [], None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on tiny demo parts
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values))
            model = build(kind, params, x_train.shape[1], seed).fit(x_train, y_train)
            acc = float((probabilities(model, x_val).argmax(1) == y_val).mean()) if len(y_val) else 0.0
            tried.append((params, acc))
            if best is None or acc > best[1]:
                best = (params, acc, model)
    return Fitted(best[2], best[0], best[1], len(tr), tried)


def save_estimator(model, path: Path) -> None:
    import skops.io as sio

    sio.dump(model, path)


def load_estimator(path: Path, where: str):
    """A pipeline read back with skops' default trusted types only; anything else is refused."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
        if untrusted:
            raise ModelError(f"{where}: {path.name} names types genre-bench does not load: {', '.join(untrusted[:5])}")
        model = sio.load(path, trusted=None)
    except ModelError:
        raise
    except Exception as exc:  # not a zip, not a skops schema, a type skops refuses: all "not ours"
        text = str(exc).strip().splitlines()
        raise ModelError(f"{where}: {path.name} is not a skops file of scikit-learn objects "
                         f"({text[0] if text else type(exc).__name__})") from None
    if not (hasattr(model, "steps") and hasattr(model, "decision_function")):
        raise ModelError(f"{where}: {path.name} holds a {type(model).__name__}, not a genre-bench baseline pipeline")
    return model
