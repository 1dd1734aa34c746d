"""The synthetic generator's hard conditions (issue 12): near passes, flicker, faint frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rbcflow.cli import main
from rbcflow.errors import RbcflowError
from rbcflow.synthetic import SynthConfig, preset_config, render_acquisition


def _closest(truth: pd.DataFrame) -> pd.Series:
    m = truth.merge(truth, on="frame")
    m = m[m.track_id_x < m.track_id_y]
    return np.hypot(m.x_x - m.x_y, m.y_x - m.y_y)


def test_closest_approach_is_respected_and_passes_happen():
    cfg = preset_config("hard", width=512, height=384, n_frames=200, cells_in_view=12)
    acq = render_acquisition(cfg, rng=2)
    normal = acq.tracks["kind"].isin(["tank-treading", "flipping", "partial", "focus_change"])
    truth = acq.truth[acq.truth.track_id.isin(acq.tracks.track_id[normal])]
    d = _closest(truth)
    assert d.min() >= cfg.closest_approach - 1.0  # jitter: +-0.1 px per cell
    assert (d < cfg.closest_approach + 6).sum() > 10  # near passes do happen
    # the easy lanes keep cells far apart
    easy = render_acquisition(SynthConfig(width=512, height=384, n_frames=200), rng=2)
    assert _closest(easy.truth).min() > 25


def test_flicker_is_a_per_frame_gain_of_the_given_size():
    cfg = SynthConfig(width=64, height=48, n_frames=400, cells_in_view=0, flicker=2.7, drift=0.0)
    acq = render_acquisition(cfg, rng=0)
    level = float(acq._background.mean())
    gains = np.array([acq.illumination(i) for i in range(cfg.n_frames)])
    assert np.std(gains * level) == pytest.approx(2.7, rel=0.12)
    assert abs(np.corrcoef(gains[:-1], gains[1:])[0, 1]) < 0.15  # frame to frame
    means = np.array([acq.frame(i).mean() for i in range(0, 400, 40)])
    np.testing.assert_allclose(means, gains[::40] * acq._background.mean(), atol=0.4)


def test_faint_episodes_fade_cells_for_1_to_3_frames():
    cfg = preset_config("hard", width=256, height=192, n_frames=300, cells_in_view=6)
    acq = render_acquisition(cfg, rng=4)
    fades = [c.fade for c in acq._cells if c.fade is not None]
    assert fades
    faint = np.concatenate(fades) < 1
    n_all = sum(len(c.x) for c in acq._cells)
    assert 0.02 < faint.sum() / n_all < 0.09
    for f in fades:
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, (f < 1).astype(int), 0])))[::2]
        assert runs.min() >= 1 and runs.max() <= 6  # 1-3, two episodes may touch
    with pytest.raises(RbcflowError, match="preset"):
        preset_config("medium")
    with pytest.raises(RbcflowError, match="dropout_rate"):
        SynthConfig(dropout_rate=1.5)


def test_cli_synth_preset_and_conditions(tmp_path):
    out = tmp_path / "hard.avi"
    args = ["synth", str(out), "--preset", "hard", "--frames", "30", "--size", "256x128", "-q"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    tracks = pd.read_csv(tmp_path / "hard.tracks.csv")
    assert tracks["speed"].between(4, 28).all()
    out2 = tmp_path / "slow.avi"
    args = ["synth", str(out2), "--frames", "30", "--size", "256x128", "--speed", "2", "3"]
    res = CliRunner().invoke(main, [*args, "--flicker", "1.5", "-q"])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(tmp_path / "slow.tracks.csv")["speed"].between(2, 3).all()
