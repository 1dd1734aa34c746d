"""One fraction per blood draw: the tracks of a sample's passing acquisitions pooled.

A draw recorded as several acquisitions is one measurement: its tracks are pooled and the
fraction and interval computed exactly as for one acquisition
(:func:`rbcflow.classify.calibration.estimate_acquisition`, on the pooled tracks' labels,
rules and stage-2 probabilities), so the pooled interval is narrower than any one
acquisition's for the counting part and keeps the classifiers' validated error.

Decisions
---------
- *Which acquisitions are pooled.* Those analysed (``ok`` or ``skipped``) whose recording
  passes the verdict's rules about the recording itself: cell size and scale, contrast, the
  quality indicators (:func:`rbcflow.report.verdict.verdict` on the ``frontend`` and
  ``quality`` of its ``run.json``). The rules about the figure (interval width, number of
  reliable tracks, leakage) are not the acquisition's to pass: pooling is what answers a
  too-wide interval, so they are applied to the pooled figure. An acquisition left out is
  named in the sample's ``verdict_reason`` with its reasons; its row stays in ``report.csv``.
  When none passes, every analysed one (not ``fail``) is pooled and the sample keeps their
  worst verdict: a provisional figure, as an acquisition's ``check`` figure is; a sample with
  nothing to pool has no fraction.
- *The sample's verdict* is the verdict of the pooled row (its figure's rules).
- *One model per sample.* Acquisitions of one sample analysed with different models or
  parameters are not pooled silently: the sample is ``check``, saying so.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rbcflow.classify.calibration import estimate_acquisition
from rbcflow.classify.estimate import ValidatedRates
from rbcflow.config import EstimateConfig, ReportConfig
from rbcflow.report.verdict import verdict, worst
from rbcflow.schema import SAMPLE_COLUMNS

_DONE = ("ok", "skipped")


def _present(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x)) and x is not pd.NA


def _tracks(folder: Path) -> pd.DataFrame:
    path = folder / "tracks.csv"
    cols = ["label", "rule", "p_tank_treading"]
    df = pd.read_csv(
        path,
        encoding="utf-8-sig",
        usecols=cols,
        keep_default_na=False,
        na_values={"p_tank_treading": [""]},
        dtype={"label": str, "rule": str},
    )
    return df


def recording_verdict(row: Mapping[str, Any], out_dir: Path) -> tuple[str, str]:
    """(verdict, reason) of an acquisition's recording alone: its ``run.json``'s front-end
    calibration and quality indicators through :func:`~rbcflow.report.verdict.verdict`, the
    figure's own rules left out (they are applied to the pooled figure)."""
    if row.get("status") not in _DONE:
        return "fail", str(row.get("message") or row.get("status") or "not analysed")
    try:
        record = json.loads((out_dir / str(row.get("output")) / "run.json").read_text("utf-8"))
    except (OSError, ValueError):
        return "fail", "its results folder has no readable run.json"
    # a figure no figure rule fires on: only the recording's rules can
    silent = {"status": "ok", "tank_treading_fraction": 0.5, "ci_low": 0.5, "ci_high": 0.5}
    return verdict(silent, frontend=record.get("frontend") or {}, quality=record.get("quality"))


def pool_sample(
    rows: pd.DataFrame,
    out_dir: str | os.PathLike,
    rates: ValidatedRates | None = None,
    temperature: float | None = None,
    report: ReportConfig | None = None,
    estimate: EstimateConfig | None = None,
) -> dict[str, Any]:
    """One sample's row from its acquisitions' report rows (one ``sample`` value).

    ``out_dir`` is the results folder (each row's ``output`` folder holds its ``tracks.csv``);
    ``rates`` and ``temperature`` the classifier's validated rates and stage-2 temperature, as
    for one acquisition (None: the plain count).
    """
    first = rows.iloc[0]
    out: dict[str, Any] = {c: None for c in SAMPLE_COLUMNS}
    for c in ("patient", "sample", "drawn_at", "shear_rate", "baseline"):
        out[c] = first.get(c) if _present(first.get(c)) else None
    names = [str(a) for a in rows["acquisition"]]
    out.update(acquisitions=len(rows), acquisition_names="; ".join(names))
    judged = [recording_verdict(r, Path(out_dir)) for r in rows.to_dict("records")]
    ok = np.array([v == "pass" for v, _ in judged], dtype=bool)
    left = [f"{a} ({v}: {why})" for a, (v, why), k in zip(names, judged, ok, strict=True) if not k]
    passing, carried = rows[ok], "pass"
    if passing.empty:  # a provisional figure from every analysed one, their worst verdict kept
        analysed = np.array([v != "fail" for v, _ in judged], dtype=bool)
        passing = rows[analysed]
        carried = worst(v for v, k in zip([v for v, _ in judged], analysed, strict=True) if k)
    out["pooled"] = len(passing)
    for c in ("stage1_model", "stage2_model", "params_id", "rbcflow_version"):
        vals = list(
            dict.fromkeys(str(v) for v in (passing if len(passing) else rows)[c] if _present(v))
        )
        out[c] = " / ".join(vals) if vals else None
    if passing.empty:
        verdicts = [v for v, _ in judged]
        out.update(verdict=worst(verdicts), reliable=0, tank_treading=0, flipping=0)
        out["verdict_reason"] = "no acquisition could be pooled: " + "; ".join(left)
        return out
    kinds = passing[["stage1_model", "stage2_model", "params_id"]].astype(str).drop_duplicates()
    tracks = pd.concat(
        [_tracks(Path(out_dir) / str(o)) for o in passing["output"]], ignore_index=True
    )
    est = estimate_acquisition(
        tracks["label"].to_numpy(dtype=object),
        tracks["rule"].to_numpy(dtype=object),
        rates,
        report,
        estimate,
        p_tank_treading=tracks["p_tank_treading"].to_numpy(dtype=float),
        temperature=temperature,
    )
    out.update({k: est[k] for k in ("reliable", "tank_treading", "flipping", "fraction_method")})
    out.update({k: est[k] for k in ("tank_treading_fraction", "ci_low", "ci_high")})
    pooled_row = {
        "status": "ok",
        "tracks": len(tracks),
        **{k: est[k] for k in est if k != "fraction_method"},
    }
    v, reason = verdict(pooled_row)
    if len(kinds) > 1:
        v = worst([v, "check"])
        reason = "acquisitions analysed with different models or parameters pooled; " + reason
    if carried != "pass":
        v = worst([v, carried])
        reason = f"no acquisition passed, all {len(passing)} pooled: " + "; ".join(left)
        reason += f"; the pooled figure: {verdict(pooled_row)[1]}"
    elif left:
        reason += f"; left out {len(left)} of {len(rows)} acquisitions: " + "; ".join(left)
    out.update(verdict=v, verdict_reason=reason)
    return out


def sample_table(
    report: pd.DataFrame,
    out_dir: str | os.PathLike,
    rates: ValidatedRates | None = None,
    temperature: float | None = None,
    report_cfg: ReportConfig | None = None,
    estimate_cfg: EstimateConfig | None = None,
) -> pd.DataFrame:
    """``samples.csv``'s rows: one per sample of ``report`` (rows without a sample are left
    out), ordered by patient, draw date and sample (:data:`SAMPLE_COLUMNS`)."""
    has = report[report["sample"].map(_present)] if "sample" in report else report.iloc[:0]
    rows = [
        pool_sample(group, out_dir, rates, temperature, report_cfg, estimate_cfg)
        for _, group in has.groupby(["patient", "sample"], sort=False, dropna=False)
    ]
    return (
        typed(rows, SAMPLE_COLUMNS)
        .sort_values(["patient", "drawn_at", "sample"], na_position="last", kind="stable")
        .reset_index(drop=True)
    )


def typed(rows: list[Mapping[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    """Rows -> a DataFrame with ``columns``' names and dtypes (missing values as NA/None)."""
    df = pd.DataFrame({c: [r.get(c) for r in rows] for c in columns})
    for c, t in columns.items():
        if t in ("Int64", "float64"):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(t)
        else:
            df[c] = df[c].astype(object).where(df[c].map(_present), None)
    return df


def rounded(df: pd.DataFrame, decimals: int = 3, seconds: int = 1) -> pd.DataFrame:
    """A copy with fractions (and intervals) rounded to ``decimals`` and seconds to ``seconds``
    decimals, for the tables people read."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype != np.float64:
            continue
        if c in ("tank_treading_fraction", "ci_low", "ci_high", "fraction_counted"):
            out[c] = out[c].round(decimals)
        elif c.endswith("_s"):
            out[c] = out[c].round(seconds)
    return out
