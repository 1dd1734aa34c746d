"""Both stages scored on labelled sequences, with the paper's conventions (``rbcflow evaluate``).

Labels come from the one label rule, :func:`rbcflow.classify.labels.label_tracks`, with the
:class:`~rbcflow.config.ReportConfig` thresholds, and fractions from
:func:`rbcflow.classify.labels.summarize`: the figures judge exactly the calls ``analyze``
makes (without the front end's geometric rules: labelled sequences carry no geometry).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from rbcflow.classify.inference import Classifier
from rbcflow.classify.labels import label_tracks, summarize
from rbcflow.config import ReportConfig
from rbcflow.io.sequences import acquisition_of
from rbcflow.schema import FLIPPING, LABEL_NAMES, UNRELIABLE
from rbcflow.training.metrics import binary_metrics


def evaluate(
    classifier: Classifier,
    names: Sequence[str],
    sequences: Sequence[np.ndarray],
    labels: Sequence[int],
    *,
    cfg: ReportConfig | None = None,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Score both stages on labelled sequences (paper conventions).

    Parameters
    ----------
    classifier : Classifier
    names : sequence names (``ACQUISITION_INDEX``), for the per-acquisition table.
    sequences : raw crop sequences.
    labels : authors' labels (0 tank-treading, 1 flipping, 2 unreliable).
    cfg : decision thresholds (default :class:`~rbcflow.config.ReportConfig`).
    batch_size, progress : as for :meth:`Classifier.predict`.

    Returns
    -------
    dict
        ``stage1``: metrics with positive = reliable, on all sequences; ``stage2``: metrics with
        positive = flipping, on the truly reliable sequences; ``acquisitions``: DataFrame with,
        per acquisition, the true and estimated counts and tank-treading fractions (truth:
        among truly reliable; estimate: among those called reliable by stage 1);
        ``predictions``: the per-sequence predictions, labels and truth.
    """
    cfg = cfg or ReportConfig()
    labels_a = np.asarray(labels, dtype=np.int64)
    pred = classifier.predict(sequences, batch_size=batch_size, progress=progress)
    p_rel = pred.p_reliable.to_numpy()
    p_tt = pred.p_tank_treading.to_numpy()
    called = label_tracks(p_rel, p_tt, cfg)
    # Stage 2 is judged on its own, on every truly reliable sequence: the kind each one is given
    # when stage 1 lets it through.
    kind = label_tracks(np.ones(len(p_tt)), p_tt, cfg)
    truth = np.array([LABEL_NAMES[int(v)] for v in labels_a], dtype=object)
    pred.insert(0, "sequence_name", list(names))
    pred["label"] = called
    pred["truth"] = truth
    rel_true = labels_a != UNRELIABLE
    rel_pred = called != LABEL_NAMES[UNRELIABLE]
    flip_pred = kind == LABEL_NAMES[FLIPPING]
    stage1 = binary_metrics(rel_true, rel_pred)
    stage2 = binary_metrics(labels_a[rel_true] == FLIPPING, flip_pred[rel_true])
    rows = []
    acq = np.array([acquisition_of(n) for n in names])
    for a in sorted(set(acq)):
        m = acq == a
        true, est = summarize(truth[m], cfg), summarize(called[m], cfg)
        rows.append(
            {
                "acquisition": a,
                "sequences": int(m.sum()),
                "reliable_true": true["reliable"],
                "reliable_est": est["reliable"],
                "tt_fraction_true": true["tank_treading_fraction"],
                "tt_fraction_est": est["tank_treading_fraction"],
            }
        )
    return {
        "stage1": stage1,
        "stage2": stage2,
        "acquisitions": pd.DataFrame(rows),
        "predictions": pred,
    }
