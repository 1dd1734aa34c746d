"""Classifier networks and model folders (stage 1: C-RNN; stage 2: CNN over K frames).

Importing this package imports torch; the rest of rbcflow does not need it.
"""

from rbcflow.models.folder import (
    LoadedModel,
    folder_checksum,
    load_model,
    read_config,
    save_model,
)
from rbcflow.models.nets import (
    CRNN,
    CRNNConfig,
    Ensemble,
    StackCNN,
    StackCNNConfig,
    architecture_of,
    build_network,
)

__all__ = [
    "CRNN",
    "CRNNConfig",
    "Ensemble",
    "LoadedModel",
    "StackCNN",
    "StackCNNConfig",
    "architecture_of",
    "build_network",
    "folder_checksum",
    "load_model",
    "read_config",
    "save_model",
]
