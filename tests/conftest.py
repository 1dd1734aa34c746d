"""Shared fixtures.

``shared_data`` gives the real labelled sequences of ../shared/data/darrin2023 when the checkout
sits beside ../shared (developers' machines and CI); tests that need it skip with the reason
otherwise (a fresh clone elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the property tests with a fixed seed (a landing must not hang on a lucky draw);
# developers' runs explore new examples each time and report what they find.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("RBCFLOW_SHARED_DATA", REPO.parent / "shared" / "data" / "darrin2023")
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data/darrin2023, or skip the test with a clear reason."""
    if not (SHARED_DATA / "stage1_BG" / "dataset.csv").is_file():
        pytest.skip(
            f"real labelled data not found at {SHARED_DATA} (only beside ../shared; "
            "set RBCFLOW_SHARED_DATA to point elsewhere)"
        )
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    """Skip ``gpu`` tests without CUDA, ``slow`` tests unless ``-m slow`` is asked for."""
    markexpr = config.getoption("-m") or ""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "slow" in item.keywords and "slow" not in markexpr:
            item.add_marker(pytest.mark.skip(reason="slow test: run with -m slow"))
