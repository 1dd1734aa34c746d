"""The schema a model folder's ``config.json`` must satisfy before anything is built from it.

A config is data from outside the program: a number in it decides how much memory the network
takes (``"members": 100000`` would build 100,000 networks), and a name in it decides which file
is read (``"weights_file": "../x"``) and what each network output means (``class_names``). So
:func:`validate_config` checks, before any network is built or any weights file opened:

- ``stage`` is 1 or 2; ``class_names`` is exactly that stage's list, in output order
  (:data:`STAGE_CLASS_NAMES`: what :mod:`rbcflow.training` writes; a swapped pair would
  silently swap the classes), and ``positive_class``, when present, is the second;
- ``architecture``: a known network with every parameter an integer (or, for dropout, a number)
  inside :data:`BOUNDS`, and no unknown parameter;
- ``input``: ``k`` inside its bounds, ``crop_size`` the networks' (31), a known sampling;
- ``weights_file``: a plain ``*.safetensors`` file name (no folder part, not hidden);
  ``weights_sha256``: 64 hexadecimal digits.

The bounds are far beyond the shipped models (2-3 members, channels up to 64, K 12 and 20) and
a lab's own training, and small enough that building the largest network allowed takes well
under a gigabyte. A hand-written check rather than a JSON-Schema library: the rules are few, one
cross-field rule (stack_cnn's ``k`` equals ``input.k``) does not fit JSON Schema well, and each
refusal must be rbcflow's own one-line message naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from rbcflow.schema import CROP_SIZE, FLIPPING, LABEL_NAMES, TANK_TREADING

STAGE_CLASS_NAMES: dict[int, list[str]] = {
    1: ["unreliable", "reliable"],
    2: [LABEL_NAMES[TANK_TREADING], LABEL_NAMES[FLIPPING]],
}
"""Class names of each stage's two network outputs, in output order."""

BOUNDS: dict[str, tuple[float, float]] = {
    "members": (1, 16),
    "channels_len": (1, 6),
    "channels": (1, 256),
    "hidden": (1, 512),
    "dense": (1, 512),
    "width": (1, 128),
    "k": (1, 64),
    "dropout": (0.0, 0.99),
}
"""Inclusive bounds of the architecture's and input's numbers."""

SAMPLINGS = ("uniform", "similarity")
_ARCH_KEYS = {
    "crnn": {"name", "members", "channels", "hidden", "dense", "dropout"},
    "stack_cnn": {"name", "members", "k", "width", "dropout"},
}
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ConfigProblem(ValueError):
    """What is wrong with a config, in one line naming the field (the caller adds the file)."""


def _int(value: Any, field: str, bound: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigProblem(f"{field} must be an integer, not {type(value).__name__}")
    lo, hi = BOUNDS[bound or field.rsplit(".", 1)[-1]]
    if not lo <= value <= hi:
        raise ConfigProblem(f"{field} = {value} is outside {lo:g}..{hi:g}")
    return value


def _architecture(arch: Any, input_k: int) -> None:
    if not isinstance(arch, dict):
        raise ConfigProblem("architecture must be an object")
    name = arch.get("name")
    if name not in _ARCH_KEYS:
        raise ConfigProblem(f"architecture.name {name!r} is not one of {sorted(_ARCH_KEYS)}")
    unknown = set(arch) - _ARCH_KEYS[name]
    if unknown:
        raise ConfigProblem(f"architecture has unknown parameter(s) {sorted(unknown)}")
    _int(arch.get("members", 1), "architecture.members")
    dropout = arch.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, int | float):
        raise ConfigProblem("architecture.dropout must be a number")
    lo, hi = BOUNDS["dropout"]
    if not lo <= dropout <= hi:
        raise ConfigProblem(f"architecture.dropout = {dropout} is outside {lo:g}..{hi:g}")
    if name == "crnn":
        channels = arch.get("channels", [8, 32, 64, 128])
        if not isinstance(channels, list):
            raise ConfigProblem("architecture.channels must be a list")
        lo, hi = BOUNDS["channels_len"]
        if not lo <= len(channels) <= hi:
            raise ConfigProblem(
                f"architecture.channels has {len(channels)} layers, outside {lo:g}..{hi:g}"
            )
        for c in channels:
            _int(c, "architecture.channels", "channels")
        for key in ("hidden", "dense"):
            if key in arch:
                _int(arch[key], f"architecture.{key}")
    else:
        if "width" in arch:
            _int(arch["width"], "architecture.width")
        if _int(arch.get("k", input_k), "architecture.k") != input_k:
            raise ConfigProblem(f"architecture.k = {arch.get('k')} differs from input.k {input_k}")


def _input(spec: Any) -> int:
    if not isinstance(spec, dict):
        raise ConfigProblem("input must be an object")
    k = _int(spec.get("k"), "input.k")
    if spec.get("crop_size", CROP_SIZE) != CROP_SIZE:
        raise ConfigProblem(f"input.crop_size = {spec.get('crop_size')!r}, the networks take 31")
    if spec.get("sampling") not in SAMPLINGS:
        raise ConfigProblem(f"input.sampling {spec.get('sampling')!r} is not one of {SAMPLINGS}")
    if not isinstance(spec.get("pad", False), bool):
        raise ConfigProblem("input.pad must be true or false")
    data_range = spec.get("ssim_data_range", 255.0)
    if isinstance(data_range, bool) or not isinstance(data_range, int | float) or data_range <= 0:
        raise ConfigProblem("input.ssim_data_range must be a positive number")
    return k


def check_weights_file(name: Any) -> str:
    """``name`` if it is a plain ``*.safetensors`` file name, else :class:`ConfigProblem`.

    Examples
    --------
    >>> check_weights_file("weights.safetensors")
    'weights.safetensors'
    >>> check_weights_file("../x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rbcflow.classify.model_schema.ConfigProblem: weights_file '../x' is not a plain file name ...
    """
    if (
        not isinstance(name, str)
        or not name
        or any(c in name for c in "/\\:\0")
        or name.startswith(".")
        or not name.endswith(".safetensors")
        or len(name) > 255
    ):
        raise ConfigProblem(
            f"weights_file {name!r} is not a plain file name inside the model folder "
            "(NAME.safetensors)"
        )
    return name


def validate_config(cfg: dict[str, Any]) -> None:
    """Raise :class:`ConfigProblem` unless ``cfg`` (a parsed ``config.json``) fits the schema
    (see the module docstring). Format and version are checked by the caller."""
    stage = cfg.get("stage")
    if stage not in STAGE_CLASS_NAMES or isinstance(stage, bool):
        raise ConfigProblem(f"stage {stage!r} is not 1 or 2")
    expected = STAGE_CLASS_NAMES[stage]
    if cfg.get("class_names") != expected:
        raise ConfigProblem(
            f"class_names {cfg.get('class_names')!r} are not stage {stage}'s {expected} "
            "(in output order)"
        )
    if "positive_class" in cfg and cfg["positive_class"] != expected[1]:
        raise ConfigProblem(
            f"positive_class {cfg['positive_class']!r} is not stage {stage}'s {expected[1]!r}"
        )
    k = _input(cfg.get("input"))
    _architecture(cfg.get("architecture"), k)
    check_weights_file(cfg.get("weights_file", "weights.safetensors"))
    digest = cfg.get("weights_sha256")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise ConfigProblem("weights_sha256 is not 64 hexadecimal digits")
    calibration = cfg.get("calibration")
    if calibration is not None and not isinstance(calibration, dict):
        raise ConfigProblem("calibration must be an object")
