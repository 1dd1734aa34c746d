"""A model is a self-describing folder: ``config.json`` + ``weights.safetensors``.

``config.json`` holds everything needed to use the weights and to judge them: the architecture,
the input preparation (K, sampling, normalisation), class names, the training data and split,
validation metrics, the rbcflow version and the SHA-256 of the weights file, verified on every
load. Weights are stored with safetensors (plain tensors, no code is ever unpickled).

A config is checked against :mod:`rbcflow.classify.model_schema` (bounds, class names, a plain
weights file name) before any network is built or weights file opened. Whether a folder is the
*shipped* model is decided by content: both its files must hash to the sums pinned in
:mod:`rbcflow.classify.shipped_models` (:func:`model_origin`); any other folder is
``user-supplied``. :func:`load_model` loads either (``allow_user=False`` refuses user-supplied
ones: ``rbcflow analyze`` without ``--allow-user-models``).

:func:`default_model_dir` says where a stage's default model is: ``$RBCFLOW_MODELS/stage{N}``, or
the shipped models in the repository's ``models/`` folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rbcflow import __version__
from rbcflow.classify.model_schema import ConfigProblem, check_weights_file, validate_config
from rbcflow.classify.shipped_models import SHIPPED_SHA256
from rbcflow.errors import ModelError
from rbcflow.io.outputs import write_bytes_atomic, write_text_atomic

if TYPE_CHECKING:  # torch is imported where a network is built: checking a folder needs none
    import torch
    from torch import nn

MODELS_ENV = "RBCFLOW_MODELS"
"""Environment variable naming a folder that holds ``stage1/`` and ``stage2/`` model folders."""

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT = "rbcflow-model"
FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "format",
    "format_version",
    "stage",
    "architecture",
    "input",
    "class_names",
    "weights_sha256",
)
CONFIG_MAX_BYTES = 16 * 1024**2
"""A ``config.json`` larger than this is refused before it is parsed (the shipped ones: 25 kB)."""
WEIGHTS_MAX_BYTES = 512 * 1024**2
"""A weights file larger than this is refused before it is read (the shipped ones: < 1 MB)."""
SHIPPED = "shipped"
USER_SUPPLIED = "user-supplied"


@dataclass
class LoadedModel:
    """A network loaded from a model folder, in eval mode.

    network : the torch module (logits ``(B, 2)``; ``softmax`` gives class probabilities).
    config : the folder's ``config.json`` as a dict.
    path : the folder.
    checksum : short checksum of the folder (12 hex digits of the SHA-256 of config.json and
        the weights), written into every output that used the model.
    origin : ``"shipped"`` (both files match :mod:`rbcflow.classify.shipped_models`) or
        ``"user-supplied"``.
    weights_sha256 : SHA-256 (hex) of the weights file, as read.
    """

    network: nn.Module
    config: dict[str, Any]
    path: Path
    checksum: str
    origin: str = USER_SUPPLIED
    weights_sha256: str = ""

    @property
    def stage(self) -> int:
        return int(self.config["stage"])

    @property
    def k(self) -> int:
        return int(self.config["input"]["k"])

    @property
    def sampling(self) -> str:
        return str(self.config["input"]["sampling"])


def default_model_dir(stage: int) -> Path:
    """The default model folder of a stage: ``$RBCFLOW_MODELS/stage{N}`` if that variable is
    set, else the shipped model inside the package, ``rbcflow/models/stage{N}`` (package data:
    a wheel or a non-editable install carries it)."""
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage}")
    root = os.environ.get(MODELS_ENV)
    base = Path(root) if root else Path(__file__).resolve().parents[1] / "models"
    return base / f"stage{stage}"


@dataclass(frozen=True)
class ModelOrigin:
    """Where a model folder's files come from, judged by their content (:func:`model_origin`).

    stage : the config's stage.
    origin : ``"shipped"`` or ``"user-supplied"``.
    weights_sha256, config_sha256 : SHA-256 (hex) of the two files.
    checksum : the folder's short checksum (as :func:`folder_checksum`).
    weights_path : the weights file.
    """

    stage: int
    origin: str
    weights_sha256: str
    config_sha256: str
    checksum: str
    weights_path: Path

    @property
    def shipped(self) -> bool:
        return self.origin == SHIPPED


def _regular_size(path: Path, what: str, limit: int, folder: Path) -> int:
    """Size of ``path`` after checking (with ``os.stat``, nothing opened) that it is a regular
    file no larger than ``limit``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelError(f"{what} {path.name} is missing", folder) from None
    except OSError as exc:
        raise ModelError(f"cannot read {path.name}: {exc.strerror or exc}", folder) from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{what} {path.name} is not a regular file", folder)
    if st.st_size > limit:
        raise ModelError(
            f"{what} {path.name} is {st.st_size / 1024**2:.0f} MiB, more than the "
            f"{limit / 1024**2:.0f} MiB a model file may have",
            folder,
        )
    return st.st_size


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_checksum(folder: str | os.PathLike, length: int = 12) -> str:
    """Short checksum of a model folder: SHA-256 of config.json followed by the weights."""
    folder = Path(folder)
    h = hashlib.sha256()
    try:
        weights = check_weights_file(
            json.loads((folder / CONFIG_FILE).read_bytes()).get("weights_file", WEIGHTS_FILE)
        )
    except (ConfigProblem, ValueError, AttributeError):
        weights = WEIGHTS_FILE
    for name in (CONFIG_FILE, weights):
        h.update((folder / name).read_bytes())
    return h.hexdigest()[:length]


def save_model(folder: str | os.PathLike, network: nn.Module, config: dict[str, Any]) -> str:
    """Write ``network`` and ``config`` as a model folder; returns the folder checksum.

    ``config`` must hold at least ``stage``, ``architecture``, ``input`` and ``class_names``;
    ``format``, ``format_version``, ``rbcflow_version`` and ``weights_sha256`` are filled in.
    Each file is written atomically (:mod:`rbcflow.io.outputs`), the weights first, so a file
    is never half-written, and weights that do not match their config are refused on load.
    """
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    weights = save(state, metadata={"format": FORMAT})
    cfg = {"format": FORMAT, "format_version": FORMAT_VERSION, **config}
    cfg.setdefault("rbcflow_version", __version__)
    cfg["weights_file"] = WEIGHTS_FILE
    cfg["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"model config lacks {missing}")
    write_bytes_atomic(folder / WEIGHTS_FILE, weights)
    write_text_atomic(folder / CONFIG_FILE, json.dumps(cfg, indent=2, sort_keys=False) + "\n")
    return folder_checksum(folder)


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a model folder, checked for the required keys.

    Raises
    ------
    ModelError
        If the folder or its config is missing, not JSON, or not an rbcflow model config.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError("model folder not found", folder)
    path = folder / CONFIG_FILE
    if not path.exists():
        raise ModelError(f"not a model folder: no {CONFIG_FILE}", folder)
    _regular_size(path, "config", CONFIG_MAX_BYTES, folder)
    try:
        cfg = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{CONFIG_FILE} is damaged (not valid JSON: {exc})", folder) from None
    except (OSError, RecursionError) as exc:
        raise ModelError(f"cannot read {CONFIG_FILE}: {type(exc).__name__}", folder) from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise ModelError(f"{CONFIG_FILE} is not an rbcflow model config", folder)
    if cfg.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"model format version {cfg.get('format_version')!r} is not supported "
            f"(this rbcflow reads {FORMAT_VERSION})",
            folder,
        )
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ModelError(f"{CONFIG_FILE} lacks {missing}", folder)
    try:
        validate_config(cfg)
    except ConfigProblem as exc:
        raise ModelError(f"{CONFIG_FILE} is refused: {exc}", folder) from None
    return cfg


def model_origin(folder: str | os.PathLike) -> ModelOrigin:
    """Check a model folder (config schema, weights checksum) and say whether it is shipped.

    Reads the config and hashes both files; builds no network.

    Raises
    ------
    ModelError
        As :func:`load_model`, for every problem found before the weights are loaded.
    """
    folder = Path(folder)
    cfg = read_config(folder)
    wpath = folder / cfg.get("weights_file", WEIGHTS_FILE)
    _regular_size(wpath, "weights file", WEIGHTS_MAX_BYTES, folder)
    config_bytes, weights_bytes = (folder / CONFIG_FILE).read_bytes(), wpath.read_bytes()
    digest = hashlib.sha256(weights_bytes).hexdigest()
    if digest != cfg["weights_sha256"]:
        raise ModelError(
            f"{wpath.name} is damaged or altered: its SHA-256 {digest[:12]}... differs from "
            f"the config's {str(cfg['weights_sha256'])[:12]}...",
            folder,
        )
    config_digest = hashlib.sha256(config_bytes).hexdigest()
    pinned = SHIPPED_SHA256.get(int(cfg["stage"]), {})
    shipped = pinned.get(CONFIG_FILE) == config_digest and pinned.get(WEIGHTS_FILE) == digest
    h = hashlib.sha256(config_bytes)  # the folder's short checksum, as folder_checksum
    h.update(weights_bytes)
    return ModelOrigin(
        stage=int(cfg["stage"]),
        origin=SHIPPED if shipped else USER_SUPPLIED,
        weights_sha256=digest,
        config_sha256=config_digest,
        checksum=h.hexdigest()[:12],
        weights_path=wpath,
    )


def load_model(
    folder: str | os.PathLike, device: str | torch.device = "cpu", *, allow_user: bool = True
) -> LoadedModel:
    """Load a model folder, verifying its config's schema and the weights' checksum.

    Parameters
    ----------
    folder : the model folder.
    device : where the network goes.
    allow_user : load a folder that is not a shipped model (:func:`model_origin`); False
        refuses it.

    Raises
    ------
    ModelError
        If the folder, config or weights are missing, the config breaks the schema
        (:mod:`rbcflow.classify.model_schema`), the weights' SHA-256 differs from the config's
        (damaged or altered file), the weights do not fit the architecture, or the folder is
        user-supplied and ``allow_user`` is False.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from rbcflow.classify.nets import build_network

    folder = Path(folder)
    found = model_origin(folder)
    if not allow_user and not found.shipped:
        raise ModelError(user_model_refusal(found), folder)
    cfg = read_config(folder)
    wpath = found.weights_path
    try:
        network = build_network(cfg["architecture"])
    except (ValueError, TypeError) as exc:
        raise ModelError(f"architecture in {CONFIG_FILE} is invalid: {exc}", folder) from None
    try:
        state = load_file(str(wpath), device="cpu")
        network.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise ModelError(f"weights do not load into the architecture: {msg}", folder) from None
    network.to(device).eval()
    return LoadedModel(
        network=network,
        config=cfg,
        path=folder,
        checksum=found.checksum,
        origin=found.origin,
        weights_sha256=found.weights_sha256,
    )


def user_model_refusal(found: ModelOrigin) -> str:
    """The message that refuses a user-supplied model folder (without the folder's name)."""
    return (
        f"not a shipped stage-{found.stage} model (checksum {found.checksum}, weights SHA-256 "
        f"{found.weights_sha256[:12]}...); a model of your own is used only when asked for "
        "(rbcflow analyze --allow-user-models)"
    )
