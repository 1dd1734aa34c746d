"""From cell crop sequences to per-sequence probabilities with the two classifiers.

:func:`load_classifier` loads a stage-1 and a stage-2 model folder (the shipped defaults in
``models/`` unless told otherwise); :meth:`Classifier.predict` turns raw crop sequences into the
probabilities ``p_reliable`` (stage 1) and ``p_tank_treading`` (stage 2, computed for every
sequence). Probabilities only: labels are decided in one place,
:func:`rbcflow.classify.labels.label_tracks`, and both stages are scored on labelled sequences
by :func:`rbcflow.training.evaluation.evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from rbcflow.classify.calibration import config_rates, config_temperature
from rbcflow.classify.estimate import ValidatedRates
from rbcflow.classify.model_folder import LoadedModel, default_model_dir, load_model
from rbcflow.classify.sampling import pad_frames, prepare
from rbcflow.classify.tta import apply_view, check_views
from rbcflow.config import ReportConfig
from rbcflow.errors import ModelError
from rbcflow.run_settings import InferenceConfig
from rbcflow.schema import LABEL_NAMES, TANK_TREADING, check_crops

BATCH_SIZE = InferenceConfig().batch_size
"""Sequences per network batch on a GPU unless told otherwise
(:class:`rbcflow.run_settings.InferenceConfig`)."""

CPU_BATCH_SIZE = InferenceConfig().cpu_batch_size
"""Sequences per network batch on the CPU unless told otherwise: small batches stay in the
caches (``benchmarks/bench_classify.py`` measures tracks/s against batch size)."""


def resolve_device(device: str | None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when available, else CPU; otherwise the named device."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for but CUDA is not available")
    return dev


# -- batching shared with training ------------------------------------------------------------


def batch_tensors(
    x: Sequence[np.ndarray], lengths: Sequence[int], idx: Sequence[int], pad_to: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack prepared sequences ``x[i] for i in idx`` into one batch.

    Returns ``(B, T, 31, 31)`` float32 frames (zero-padded at the end to the longest length of
    the batch, or to ``pad_to``) and ``(B,)`` int64 lengths.
    """
    t = pad_to if pad_to is not None else max(len(x[i]) for i in idx)
    shape = x[idx[0]].shape[1:]
    out = np.zeros((len(idx), t, *shape), dtype=np.float32)
    for j, i in enumerate(idx):
        out[j, : len(x[i])] = x[i][:t]
    return torch.from_numpy(out), torch.as_tensor([lengths[i] for i in idx], dtype=torch.int64)


def predict_proba(
    network: nn.Module,
    x: Sequence[np.ndarray],
    lengths: Sequence[int],
    batch_size: int = BATCH_SIZE,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    tta: Sequence[str] = (),
) -> np.ndarray:
    """Class probabilities ``(N, 2)`` float64 of prepared inputs.

    Batches group sequences of similar length (less padding); the C-RNN ignores padding, the
    CNN's inputs all have K frames. ``tta``: test-time views (:mod:`rbcflow.classify.tta`,
    e.g. ``("mirror", "time", "mirror+time")``); the probabilities are then the mean over the
    input as it is and each view (a mean of probabilities, as the ensembles' members are
    averaged). Empty: the input as it is only.
    """
    views = ("",) + check_views(tta)
    network.eval()
    out = np.zeros((len(x), 2), dtype=np.float64)
    if len(x) == 0:
        return out
    order = np.argsort(np.asarray([len(a) for a in x]), kind="stable")
    with torch.inference_mode():
        for s in range(0, len(x), batch_size):
            idx = order[s : s + batch_size]
            xb, lb = batch_tensors(x, lengths, idx)
            xb, lb = xb.to(device), lb.to(device)
            p = 0.0
            for view in views:
                xv = apply_view(xb, lb, view) if view else xb
                if channels_last and xv.shape[1] > 1:
                    xv = xv.contiguous(memory_format=torch.channels_last)
                p = p + torch.softmax(network(xv, lb).float(), dim=1)
            out[idx] = (p / len(views)).cpu().numpy()
    return out


# -- the network as run for inference --------------------------------------------------------


def _flat(seq: nn.Sequential) -> list[nn.Module]:
    out: list[nn.Module] = []
    for m in seq:
        out.extend(_flat(m) if type(m) is nn.Sequential else [m])
    return out


class _MaxPool2(nn.Module):
    """``nn.MaxPool2d(2)`` as the maximum of four strided views where that is faster (few
    channels in NHWC: 2.6 against 4.8 ms for 384 frames of 8 x 31 x 31, one thread); the
    same values, since a maximum is exact."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] > 8 or not x.is_contiguous(memory_format=torch.channels_last):
            return torch.nn.functional.max_pool2d(x, 2)
        h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
        v = x[:, :, :h, :w]
        top = torch.maximum(v[:, :, 0::2, 0::2], v[:, :, 0::2, 1::2])
        return torch.maximum(top, torch.maximum(v[:, :, 1::2, 0::2], v[:, :, 1::2, 1::2]))


def _plain_pool2(m: nn.Module) -> bool:
    return (
        isinstance(m, nn.MaxPool2d)
        and m.kernel_size in (2, (2, 2))
        and m.stride in (2, (2, 2))
        and m.padding in (0, (0, 0))
        and m.dilation in (1, (1, 1))
        and not m.ceil_mode
        and not m.return_indices
    )


def _inference_sequential(seq: nn.Sequential) -> nn.Sequential:
    """``seq`` (eval mode) with each batch norm that follows a convolution folded into it,
    and each ReLU that precedes a max pool moved after it."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    mods = _flat(seq)
    out: list[nn.Module] = []
    for m in mods:
        if isinstance(m, nn.BatchNorm2d) and out and isinstance(out[-1], nn.Conv2d):
            out[-1] = fuse_conv_bn_eval(out[-1], m)
        elif isinstance(m, nn.MaxPool2d) and out and isinstance(out[-1], nn.ReLU):
            # max and ReLU commute: pool first, the ReLU then sees a quarter of the values
            out.insert(len(out) - 1, _MaxPool2() if _plain_pool2(m) else m)
        elif _plain_pool2(m):
            out.append(_MaxPool2())
        else:
            out.append(m)
    return nn.Sequential(*out)


def inference_network(network: nn.Module, channels_last: bool = False) -> nn.Module:
    """A copy of ``network`` made for inference: the same function, less work.

    Every batch norm that follows a convolution inside an ``nn.Sequential`` is folded into the
    convolution's weights and bias (eval-mode batch norm is an affine map per channel), a
    ReLU followed by a max pool becomes the pool followed by the ReLU (``max`` and ``ReLU``
    commute, so that swap is exact, and the ReLU then sees a quarter of the values), and 2x2
    max pools of few channels take the maximum of strided views (:class:`_MaxPool2`). Folding
    changes float rounding only: probabilities agree with the original network to ~1e-7
    (``tests/test_inference.py``). The original is left as it is (training and fine-tuning
    use it).
    """
    import copy

    net = copy.deepcopy(network).eval()
    parents = [(name, mod) for name, mod in net.named_modules() if name or mod is net]
    for _, parent in parents:
        for child_name, child in list(parent.named_children()):
            if type(child) is nn.Sequential:
                setattr(parent, child_name, _inference_sequential(child))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


# -- the classifier ------------------------------------------------------------------------------


@dataclass
class Classifier:
    """The two stages, loaded; see :func:`load_classifier`.

    stage1, stage2 : the loaded model folders.
    device : where the networks run.

    It gives probabilities only; :func:`rbcflow.classify.labels.label_tracks` makes them labels.
    """

    stage1: LoadedModel
    stage2: LoadedModel
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _nets: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def inference_net(self, model: LoadedModel) -> nn.Module:
        """``model``'s network as run here (:func:`inference_network`, made once)."""
        key = id(model.network)
        if key not in self._nets:
            self._nets[key] = (
                model.network,  # kept: the id stays this network's while the entry lives
                inference_network(model.network, channels_last=self.device.type == "cpu"),
            )
        return self._nets[key][1]

    @property
    def default_batch_size(self) -> int:
        """Sequences per batch when not told: :data:`CPU_BATCH_SIZE` on the CPU, else
        :data:`BATCH_SIZE`."""
        return CPU_BATCH_SIZE if self.device.type == "cpu" else BATCH_SIZE

    @property
    def stage1_checksum(self) -> str:
        return self.stage1.checksum

    @property
    def stage2_checksum(self) -> str:
        return self.stage2.checksum

    @property
    def stage1_dir(self) -> Path:
        return self.stage1.path

    @property
    def stage2_dir(self) -> Path:
        return self.stage2.path

    @property
    def stage2_temperature(self) -> float | None:
        """Stage 2's validated temperature (``calibration`` of its config), or None."""
        return config_temperature(self.stage2.config)

    def validated_rates(self, cfg: ReportConfig | None = None) -> ValidatedRates | None:
        """The models' out-of-fold confusion counts at ``cfg``'s thresholds
        (:func:`rbcflow.classify.calibration.rates_at`); None for models without them."""
        return config_rates(self.stage1.config, self.stage2.config, cfg)

    def _run(self, model: LoadedModel, seqs: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
        spec = model.config["input"]
        k = int(spec["k"])
        x = prepare(
            seqs,
            k,
            str(spec["sampling"]),
            pad=False,
            data_range=float(spec.get("ssim_data_range", 255.0)),
        )
        lengths = [len(a) for a in x]  # real frames, before any padding
        if spec.get("pad"):
            x = [pad_frames(a, k) for a in x]
        return predict_proba(
            self.inference_net(model),
            x,
            lengths,
            batch_size,
            self.device,
            channels_last=self.device.type == "cpu",
        )

    def predict_proba(
        self,
        sequences: Sequence[np.ndarray],
        *,
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(p_reliable, p_tank_treading)``, each ``(N,)`` float64, of raw crop sequences."""
        batch_size = batch_size or self.default_batch_size
        n = len(sequences)
        p_rel = np.zeros(n)
        p_tt = np.zeros(n)
        i1 = self.stage1.config["class_names"].index("reliable")
        i2 = self.stage2.config["class_names"].index(LABEL_NAMES[TANK_TREADING])
        for s in range(0, n, batch_size):
            chunk = [
                check_crops(np.asarray(q), f"sequence {s + j}")
                for j, q in enumerate(sequences[s : s + batch_size])
            ]
            for j, q in enumerate(chunk):
                if len(q) < 1:
                    raise ValueError(f"sequence {s + j} has no frame")
            p_rel[s : s + len(chunk)] = self._run(self.stage1, chunk, batch_size)[:, i1]
            p_tt[s : s + len(chunk)] = self._run(self.stage2, chunk, batch_size)[:, i2]
            if progress is not None:
                progress(len(chunk))
        return p_rel, p_tt

    def predict(
        self,
        sequences: Sequence[np.ndarray],
        *,
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """Stage 1's and stage 2's probabilities of raw crop sequences.

        Parameters
        ----------
        sequences : sequence of (T, 31, 31) uint8 ndarray
            Raw intensities, ``T >= 1``.
        batch_size : sequences per network batch (and per progress step); None:
            :attr:`default_batch_size`. It changes speed and memory, not a probability
            (beyond float rounding, < 1e-6).
        progress : called with the number of sequences done since the last call.

        Returns
        -------
        DataFrame
            One row per sequence, in order: ``p_reliable`` and ``p_tank_treading`` (float64).

        Examples
        --------
        >>> crops = np.full((12, 31, 31), 125, np.uint8)  # 12 frames of empty chamber
        >>> out = load_classifier().predict([crops])
        >>> list(out.columns), len(out), bool(out.p_reliable.between(0, 1).all())
        (['p_reliable', 'p_tank_treading'], 1, True)
        """
        p_rel, p_tt = self.predict_proba(sequences, batch_size=batch_size, progress=progress)
        return pd.DataFrame({"p_reliable": p_rel, "p_tank_treading": p_tt})


def load_classifier(
    stage1: str | Path | None = None,
    stage2: str | Path | None = None,
    device: str | None = None,
) -> Classifier:
    """Load the two stages (``None``: the defaults of
    :func:`~rbcflow.classify.model_folder.default_model_dir`).

    Raises
    ------
    ModelError
        If a folder is missing or damaged, or holds a model of the other stage.
    """
    dev = resolve_device(device)
    models = []
    for stage, folder in ((1, stage1), (2, stage2)):
        path = Path(folder) if folder is not None else default_model_dir(stage)
        model = load_model(path, dev)
        if model.stage != stage:
            raise ModelError(f"holds a stage-{model.stage} model, expected stage {stage}", path)
        if dev.type == "cpu":
            # oneDNN convolutions are about twice as fast on NHWC tensors for these small nets.
            model.network.to(memory_format=torch.channels_last)
        models.append(model)
    return Classifier(models[0], models[1], dev)
