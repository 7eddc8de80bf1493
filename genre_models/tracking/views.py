"""Saved views of the MLflow UI: what a sweep leaves in its experiment so that the UI opens on
the comparison it is for, the nets' test accuracy side by side over seeds (or folds).

MLflow 3's experiment page can save its state (filter, grouping, charts) as a named view, kept
in the experiment as a tag ``mlflow.sharedViewState.<id>`` and opened by the URL parameter
``viewStateShareKey=<id>`` (the UI's *Views* list shows it too). A sweep saves one per split:
the training runs of that split, grouped by the ``net`` tag and the ``epochs`` parameter, in
the chart view, with bar charts of ``test_accuracy`` and ``test_track_accuracy`` (each bar a
net's mean over its seeds, or folds, at one epoch budget).

Caveat: the state's layout is the MLflow UI's own (read from MLflow 3.17's frontend); an MLflow
without saved views ignores the tag, and a later one may read only parts of it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

#: The tag prefix MLflow's UI keeps saved views under.
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
#: The metrics charted side by side, first to last.
CHARTED = ("test_accuracy", "test_track_accuracy")


def view_id(split: str) -> str:
    return f"genre-bench-nets-{split}"


def view_state(split: str) -> dict:
    """The experiment page's state: filter, grouping by net and the test-score bar charts."""
    section = f"{view_id(split)}-section"
    charts = [{"uuid": f"{view_id(split)}-{metric}", "type": "BAR", "runsCountToCompare": 100, "metricSectionId": section,
               "deleted": False, "isGenerated": False, "metricKey": metric, "displayName": metric} for metric in CHARTED]
    return {
        "searchFilter": f"tags.stage = 'train' and tags.split = '{split}'",
        "orderByKey": "attributes.start_time", "orderByAsc": False, "lifecycleFilter": "Active",
        "datasetsFilter": [], "modelVersionFilter": "All Runs",
        # By net and epoch budget: net2's 50 and 100 epochs are two bars, as in the report's Table 1.
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "net"},
                                                                    {"mode": "param", "groupByData": "epochs"}]},
        "groupsExpanded": {}, "useGroupedValuesInCharts": True, "hideEmptyCharts": True, "runsHiddenMode": "SHOW_ALL",
        "compareRunCharts": charts,
        "compareRunSections": [{"uuid": section, "name": "Test scores by net", "display": True, "isReordered": False,
                                "deleted": False, "isGenerated": False}],
        "isAccordionReordered": True, "viewMaximized": False, "runListHidden": False,
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }


def save_nets_view(client, experiment_id: str, split: str) -> str:
    """Save (or refresh) the split's view in the experiment; returns its id."""
    now = int(time.time() * 1000)
    envelope = {"name": f"genre-bench: nets side by side, split {split}", "createdAt": now, "updatedAt": now,
                "state": json.dumps(view_state(split))}
    client.set_experiment_tag(experiment_id, VIEW_TAG_PREFIX + view_id(split), json.dumps(envelope))
    return view_id(split)


def view_path(experiment_id: str, split: str) -> str:
    """The UI route (after the server's address) that opens the split's view in the chart view."""
    return f"/#/experiments/{experiment_id}/runs?viewStateShareKey={view_id(split)}&compareRunsMode=CHART"


#: The port ``mlflow ui`` is told to serve a local store on, in the command the report prints.
UI_PORT = 5000


@dataclass(frozen=True)
class ViewLink:
    """Where a person looks at one split's nets side by side: the URL, and for a local store
    the ``mlflow ui`` command that serves it (a tracking server serves it already)."""

    split: str
    url: str
    command: str | None

    def line(self) -> str:
        serve = f"run `{self.command}`, then open " if self.command else "open "
        return f"nets side by side on `{self.split}`: {serve}{self.url}"


def view_links(client, tracking_uri: str, experiment_id: str, splits) -> list[ViewLink]:
    """Each split's saved view (saved now where the sweep's is missing, if the account may
    write; a split without one is left out) as a ``ViewLink``: on a SQLite store, with the
    ``mlflow ui`` command over that store's absolute path, on 127.0.0.1:``UI_PORT``."""
    import os

    tags = client.get_experiment(experiment_id).tags
    if tracking_uri.startswith(("http://", "https://")):
        base, command = tracking_uri.rstrip("/"), None
    else:
        store = tracking_uri
        if tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"):
            store = "sqlite:///" + os.path.abspath(tracking_uri[len("sqlite:///"):])
        base, command = f"http://127.0.0.1:{UI_PORT}", f"mlflow ui --backend-store-uri {store} --port {UI_PORT}"
    links = []
    for split in splits:
        if VIEW_TAG_PREFIX + view_id(split) not in tags:
            try:
                save_nets_view(client, experiment_id, split)
            except Exception:  # a reader who may not write: no view to point at for this split
                continue
        links.append(ViewLink(split, base + view_path(experiment_id, split), command))
    return links
