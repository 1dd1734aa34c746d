"""A patient's demo: eight weekly draws of one synthetic patient, the last one a drop.

Writes, under OUT (default ``demo-patient/``):

- ``videos/``: eight acquisitions drawn by ``rbcflow synth`` with a chosen tank-treading
  fraction (seven out of crisis around 0.78, the eighth at 0.45);
- ``sheet.csv``: the metadata sheet (patient DEMO, one sample per draw, the seven first
  marked ``baseline``);
- ``results/``: ``rbcflow analyze --samples`` (report.csv, samples.csv, report.xlsx,
  index.html, one folder per acquisition), the samples recorded in ``registry.sqlite``;
- ``patient-DEMO.html``: ``rbcflow patient DEMO``'s page (and ``patient-DEMO.png``, its
  screenshot, with ``--screenshot``, through headless Chromium).

Run from the repository root::

    python scripts/demo_patient.py [OUT] [--screenshot]

It runs the real pipeline with the shipped models: about a minute per draw on a laptop core.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

FRACTIONS = (0.78, 0.80, 0.76, 0.79, 0.77, 0.81, 0.78, 0.45)
"""The designed tank-treading fraction of each weekly draw (the last one a drop)."""
FIRST_DRAW = dt.date(2024, 3, 4)
SYNTH = ["--frames", "600", "--size", "480x360", "--cells", "14", "--unreliable-fraction", "0.25"]


def rbcflow(*args: str) -> None:
    """Run ``rbcflow`` (the one beside this Python) and stop on failure."""
    exe = shutil.which("rbcflow", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "rbcflow"]
    subprocess.run([*command, *args], check=True)


def main(argv: list[str]) -> int:
    shot = "--screenshot" in argv
    args = [a for a in argv if a != "--screenshot"]
    out = Path(args[0] if args else "demo-patient")
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    lines = ["acquisition,patient,sample,drawn_at,shear_rate,baseline,notes"]
    for week, fraction in enumerate(FRACTIONS):
        drawn = FIRST_DRAW + dt.timedelta(weeks=week)
        name = f"DEMO{drawn:%m%d}_10s01"
        video = videos / f"{name}.avi"
        if not video.exists():
            rbcflow(
                "synth",
                str(video),
                *SYNTH,
                "--tt-fraction",
                str(fraction),
                "--seed",
                str(100 + week),
                "--quiet",
            )
        baseline = "yes" if week < len(FRACTIONS) - 1 else "no"
        note = f"synthetic, designed fraction {fraction:.2f}"
        lines.append(f"{name}.avi,DEMO,DEMO-{drawn:%Y%m%d},{drawn},10,{baseline},{note}")
    (out / "sheet.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    registry = out / "registry.sqlite"
    rbcflow(
        "analyze",
        str(videos),
        "--out",
        str(out / "results"),
        "--samples",
        str(out / "sheet.csv"),
        "--registry",
        str(registry),
        "--quiet",
    )
    page = out / "patient-DEMO.html"
    rbcflow("patient", "DEMO", "--registry", str(registry), "--out", str(page))
    if shot:
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=960,900",
                f"--screenshot={(out / 'patient-DEMO.png').absolute()}",
                page.absolute().as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
