"""Classifier networks and model folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rbcflow.classify.model_folder import folder_checksum, load_model, read_config, save_model
from rbcflow.classify.nets import CRNN, Ensemble, StackCNN, architecture_of, build_network
from rbcflow.errors import ModelError
from rbcflow.model_settings import CRNNConfig, StackCNNConfig
from rbcflow.training.loop import input_spec


def _seeded(net_cls, cfg, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return net_cls(cfg).eval()


def test_crnn_shape_contract():
    net = _seeded(CRNN, CRNNConfig())
    x = torch.randn(3, 12, 31, 31)
    out = net(x, torch.tensor([12, 5, 1]))
    assert out.shape == (3, 2) and out.dtype == torch.float32


def test_stack_cnn_shape_contract():
    net = _seeded(StackCNN, StackCNNConfig(k=20, width=8))
    out = net(torch.randn(4, 20, 31, 31))
    assert out.shape == (4, 2)
    with pytest.raises(RuntimeError):
        net(torch.randn(4, 10, 31, 31))  # K frames as channels: 10 != 20


def test_crnn_padding_invariance():
    net = _seeded(CRNN, CRNNConfig(channels=(4, 8, 8, 16), hidden=8, dense=8))
    rng = np.random.default_rng(0)
    seq = torch.from_numpy(rng.normal(size=(1, 7, 31, 31)).astype(np.float32))
    with torch.no_grad():
        alone = net(seq, torch.tensor([7]))
        # The same sequence padded with garbage to 19 frames, beside a longer one.
        padded = torch.from_numpy(rng.normal(size=(2, 19, 31, 31)).astype(np.float32) * 50)
        padded[0, :7] = seq[0]
        both = net(padded, torch.tensor([7, 19]))
    torch.testing.assert_close(both[0], alone[0], atol=1e-5, rtol=1e-5)
    # ... and the padding does matter when it is counted as frames (the test can fail).
    with torch.no_grad():
        counted = net(padded[:1], torch.tensor([19]))
    assert not torch.allclose(counted[0], alone[0], atol=1e-3)


def test_ensemble_averages_probabilities():
    members = [_seeded(StackCNN, StackCNNConfig(k=4, width=4), seed=s) for s in (1, 2)]
    ens = Ensemble(members).eval()
    x = torch.randn(5, 4, 31, 31)
    with torch.no_grad():
        mean = (torch.softmax(members[0](x), 1) + torch.softmax(members[1](x), 1)) / 2
        torch.testing.assert_close(torch.softmax(ens(x), 1), mean, atol=1e-6, rtol=1e-5)


def test_build_network_from_architecture():
    arch = architecture_of(StackCNNConfig(k=6, width=4), n_members=3)
    assert arch == {"name": "stack_cnn", "members": 3, "k": 6, "width": 4, "dropout": 0.3}
    net = build_network(json.loads(json.dumps(arch)))
    assert isinstance(net, Ensemble) and len(net.members) == 3
    with pytest.raises(ValueError, match="unknown architecture"):
        build_network({"name": "resnet50"})
    with pytest.raises(ValueError, match="unknown parameter"):
        build_network({"name": "crnn", "layers": 3})


@pytest.fixture
def model_dir(tmp_path):
    net = _seeded(CRNN, CRNNConfig(channels=(4, 8, 8, 16), hidden=8, dense=8))
    cfg = {
        "stage": 1,
        "architecture": architecture_of(net.cfg),
        "input": input_spec(1, 20),
        "class_names": ["unreliable", "reliable"],
    }
    folder = tmp_path / "m"
    checksum = save_model(folder, net, cfg)
    return folder, net, checksum


def test_save_load_round_trip(model_dir):
    folder, net, checksum = model_dir
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "weights.safetensors"]
    loaded = load_model(folder)
    assert loaded.checksum == checksum == folder_checksum(folder)
    assert len(checksum) == 12 and loaded.stage == 1 and loaded.k == 20
    x = torch.randn(2, 9, 31, 31)
    lengths = torch.tensor([9, 4])
    with torch.no_grad():
        torch.testing.assert_close(loaded.network(x, lengths), net(x, lengths))
    cfg = read_config(folder)
    assert cfg["format"] == "rbcflow-model" and len(cfg["weights_sha256"]) == 64
    assert "rbcflow_version" in cfg


def test_damaged_weights_fail_with_clear_error(model_dir):
    folder, _, _ = model_dir
    w = folder / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte in the tensor data
    w.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="damaged or altered") as info:
        load_model(folder)
    assert str(folder) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "damage",
    [
        "no_weights",
        "no_config",
        "bad_json",
        "not_ours",
        "truncated_weights",
        "wrong_shapes",
        "no_folder",
    ],
)
def test_broken_model_folders(model_dir, damage):
    folder, _, _ = model_dir
    cfg_path = folder / "config.json"
    if damage == "no_weights":
        (folder / "weights.safetensors").unlink()
        match = "missing"
    elif damage == "no_config":
        cfg_path.unlink()
        match = "no config.json"
    elif damage == "bad_json":
        cfg_path.write_text('{"format": "rbcflow-model", ')
        match = "not valid JSON"
    elif damage == "not_ours":
        cfg_path.write_text('{"format": "keras"}')
        match = "not an rbcflow model"
    elif damage == "truncated_weights":
        # Truncated and the config's checksum updated: the file itself is unreadable.
        w = folder / "weights.safetensors"
        w.write_bytes(w.read_bytes()[:100])
        cfg = json.loads(cfg_path.read_text())
        from rbcflow.classify.model_folder import sha256_file

        cfg["weights_sha256"] = sha256_file(w)
        cfg_path.write_text(json.dumps(cfg))
        match = "do not load"
    elif damage == "wrong_shapes":
        cfg = json.loads(cfg_path.read_text())
        cfg["architecture"]["hidden"] = 16
        cfg_path.write_text(json.dumps(cfg))
        match = "do not load"
    else:
        folder = folder.parent / "nowhere"
        match = "not found"
    with pytest.raises(ModelError, match=match):
        load_model(folder)
