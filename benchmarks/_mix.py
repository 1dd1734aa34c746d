"""Videos composited from real labelled crops, drawn with replacement (benchmarks only)."""

from __future__ import annotations

from pathlib import Path


def real_mix(by_label: dict, counts: tuple[int, int, int], video: Path, rng, seed: int) -> float:
    """Composite ``counts`` = (tank-treading, flipping, unreliable) sequences drawn with
    replacement from ``by_label`` (label -> sequences) into ``video`` (640x480, 8 cells in
    view); returns the true tank-treading fraction among the reliable tracks placed."""
    from rbcflow.synthetic import SynthConfig, composite_video

    pick = [
        by_label[c][j]
        for c, m in zip((0, 1, 2), counts, strict=True)
        for j in rng.integers(len(by_label[c]), size=m)
    ]
    _, tracks = composite_video(
        pick, video, SynthConfig(width=640, height=480), rng=seed, cells_in_view=8, overwrite=True
    )
    rel = tracks[tracks["label"] != 2]
    return float((rel["label"] == 0).mean())
