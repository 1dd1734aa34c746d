"""Regenerate the shipped sample acquisition: ``python sample_data/make_sample.py``.

Writes ``sample.avi`` (10 s at 60 fps, 640x480, 24-bit MJPG AVI), ``sample.truth.csv`` and
``sample.tracks.csv`` beside this script, procedurally drawn by :mod:`rbcflow.synthetic` with a
fixed seed (no real image is used). The truth tables are identical on every machine; the AVI
bytes may differ slightly between OpenCV/FFmpeg builds (the JPEG encoder), not its content.

Why 640x480 and MJPG: camera noise (independent between frames) cannot be compressed much; a
lossless 1024x768 AVI of 10 s is ~250 MB (FFV1) and MJPG at FFmpeg's default quality takes
tens of MB. 640x480 MJPG keeps the real cell scale (cells ~10 px across, as in the 31x31
training crops) in ~6 MB.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rbcflow.synthetic import SynthConfig, true_fraction, write_acquisition

SEED = 20230745  # fixed: the sample must regenerate identically
CONFIG = SynthConfig(
    width=640,
    height=480,
    fps=60.0,
    n_frames=600,
    cells_in_view=8.0,
    tt_fraction=0.8,
    unreliable_fraction=0.5,
)


def main() -> None:
    import pandas as pd

    out = Path(__file__).resolve().parent / "sample.avi"
    truth = write_acquisition(out, CONFIG, rng=SEED, codec="mjpg", overwrite=True)
    tracks = pd.read_csv(out.with_name("sample.tracks.csv"))
    counted = tracks[tracks["n_frames"] >= 6]
    print(
        f"{out.name}: {out.stat().st_size / 1e6:.1f} MB, {CONFIG.n_frames} frames, "
        f"{len(tracks)} tracks ({len(counted)} of >= 6 frames: "
        f"{(counted['label'] == 0).sum()} tank-treading, {(counted['label'] == 1).sum()} "
        f"flipping, {(counted['label'] == 2).sum()} unreliable), "
        f"true tank-treading fraction {true_fraction(tracks):.3f}, "
        f"{len(truth)} truth rows",
        file=sys.stderr,
    )
    print(counted.groupby("kind").size().to_string(), file=sys.stderr)


if __name__ == "__main__":
    main()
