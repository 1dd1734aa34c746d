"""Test-time views (rbcflow.classify.tta) and their mean in predict_proba."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbcflow.classify.inference import batch_tensors, load_classifier, predict_proba
from rbcflow.classify.sampling import pad_frames, prepare
from rbcflow.classify.tta import TRAINED_VIEWS, apply_view, check_views, reverse_time


@pytest.fixture(scope="module")
def shipped():
    return load_classifier(device="cpu")


def _cells(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Raw crop sequences of an off-centre dark ellipse that moves and turns (no symmetry)."""
    yy, xx = np.mgrid[:31, :31] - 15.0
    out = []
    for i in range(n):
        t = int(rng.integers(5, 40))
        frames = []
        for j in range(t):
            a = 0.3 * j + i
            u = (xx - 2 - 0.1 * j) * np.cos(a) + (yy + 3) * np.sin(a)
            v = -(xx - 2) * np.sin(a) + (yy + 3) * np.cos(a)
            cell = np.exp(-((u / 6) ** 2 + (v / 3.5) ** 2))
            frames.append(125 - 60 * cell + rng.normal(0, 3, (31, 31)))
        out.append(np.clip(frames, 0, 255).astype(np.uint8))
    return out


def _inputs(model, seqs):
    spec = model.config["input"]
    k = int(spec["k"])
    x = prepare(seqs, k, spec["sampling"], pad=False)
    lengths = [len(a) for a in x]
    return ([pad_frames(a, k) for a in x] if spec.get("pad") else x), lengths


def _mirrored(x: list[np.ndarray], lengths: list[int], view: str) -> list[np.ndarray]:
    out = []
    for a, n in zip(x, lengths, strict=True):
        a = np.array(a, copy=True)
        if "mirror" in view.split("+"):
            a = a[:, ::-1, :]
        if "time" in view.split("+"):
            a[:n] = a[:n][::-1]
        out.append(np.ascontiguousarray(a))
    return out


def test_reverse_time_keeps_padding():
    x = torch.arange(2 * 5, dtype=torch.float32).reshape(2, 5, 1, 1).expand(2, 5, 3, 3)
    y = reverse_time(x, torch.tensor([3, 5]))
    assert y[0, :, 0, 0].tolist() == [2, 1, 0, 3, 4]  # real frames reversed, padding stays
    assert y[1, :, 0, 0].tolist() == [9, 8, 7, 6, 5]
    m = apply_view(x, torch.tensor([3, 5]), "mirror+time")
    assert torch.equal(m, y.flip(2))
    with pytest.raises(ValueError, match="unknown test-time view"):
        check_views(["mirror", "rotate"])


@pytest.mark.parametrize("stage", [1, 2])
@pytest.mark.parametrize("view", ["mirror", "time", "mirror+time"])
def test_tta_probability_is_invariant_to_the_views(shipped, stage, view):
    """The mean over a group of views cannot tell an input from its mirror image or its time
    reversal; the network alone can."""
    model = shipped.stage1 if stage == 1 else shipped.stage2
    x, lengths = _inputs(model, _cells(12, np.random.default_rng(stage)))
    flipped = _mirrored(x, lengths, view)
    tta = predict_proba(model.network, x, lengths, tta=TRAINED_VIEWS)
    tta_flipped = predict_proba(model.network, flipped, lengths, tta=TRAINED_VIEWS)
    np.testing.assert_allclose(tta_flipped, tta, atol=1e-6)
    plain = predict_proba(model.network, x, lengths)
    plain_flipped = predict_proba(model.network, flipped, lengths)
    assert np.abs(plain_flipped - plain).max() > 1e-4  # not invariant without the views
    # the mean of the four views' own probabilities
    each = [predict_proba(model.network, _mirrored(x, lengths, v), lengths) for v in TRAINED_VIEWS]
    np.testing.assert_allclose(tta, (plain + sum(each)) / 4, atol=1e-6)


@pytest.mark.parametrize("stage", [1, 2])
def test_no_views_is_the_plain_network(shipped, stage):
    """``tta=()`` (the default) is the network's softmax on the input as it is."""
    model = shipped.stage1 if stage == 1 else shipped.stage2
    x, lengths = _inputs(model, _cells(9, np.random.default_rng(10 + stage)))
    p = predict_proba(model.network, x, lengths, batch_size=4)
    assert np.array_equal(p, predict_proba(model.network, x, lengths, batch_size=4, tta=()))
    model.network.eval()
    with torch.inference_mode():
        for i in range(len(x)):
            xb, lb = batch_tensors(x, lengths, [i])
            ref = torch.softmax(model.network(xb, lb).float(), dim=1).numpy()
            np.testing.assert_allclose(p[i], ref[0], atol=1e-6)
