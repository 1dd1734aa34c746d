"""The built wheel works away from the checkout: shipped models inside, ``python -m rbcflow``.

Users install a package; they do not run from a checkout. The wheel is built from this tree,
unpacked into a temporary folder (``pip install --no-deps --target``: the dependencies are the
test environment's), and run from another folder with that copy first on ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*cmd, "-w", str(dist), str(REPO)], check=True, cwd=dist)
    wheels = list(dist.glob("rbcflow-*.whl"))
    assert len(wheels) == 1, wheels
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target)]
        + [str(wheels[0])],
        check=True,
    )
    return target


def _run(args: list[str], target: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("RBCFLOW_MODELS", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_wheel_holds_the_shipped_models(installed):
    names = {str(p.relative_to(installed)) for p in installed.rglob("*") if p.is_file()}
    for stage in (1, 2):
        assert f"rbcflow/models/stage{stage}/config.json" in names
        assert f"rbcflow/models/stage{stage}/weights.safetensors" in names
    assert not any(n.startswith("tests/") for n in names)


def test_installed_wheel_analyses_the_sample_from_another_folder(installed, tmp_path):
    where = _run(["-c", "import rbcflow; print(rbcflow.__file__)"], installed, tmp_path)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed)
    version = _run(["-m", "rbcflow", "--version"], installed, tmp_path)
    assert version.returncode == 0 and "rbcflow, version" in version.stdout
    res = _run(
        ["-m", "rbcflow", "analyze", str(REPO / "sample_data" / "sample.avi"), "--quiet"],
        installed,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    report = pd.read_csv(tmp_path / "rbcflow-results" / "report.csv")
    assert list(report["status"]) == ["ok"]
    assert report["reliable"].iloc[0] > 0
    assert 0 <= report["tank_treading_fraction"].iloc[0] <= 1


def test_wheel_has_no_stray_top_level_packages(installed):
    tops = {p.name for p in installed.iterdir() if not p.name.endswith(".dist-info")}
    assert tops - {"bin"} == {"rbcflow"}, tops


def test_wheel_metadata_requires_what_the_code_imports(installed):
    meta = next(installed.glob("rbcflow-*.dist-info")) / "METADATA"
    requires = [
        line.split(":", 1)[1].strip()
        for line in meta.read_text().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    names = {
        r.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in requires
    }
    assert {"numpy", "torch", "opencv-python-headless", "filelock", "tifffile"} <= names
    assert "imageio" not in names and "scikit-image" not in names
