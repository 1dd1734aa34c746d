"""The SHA-256 of each shipped model file, pinned in the code rather than beside the weights.

A model folder's ``config.json`` holds the checksum of its weights, but whoever can change the
weights can change that checksum too: it protects against damage, not against substitution.
These sums live in the package's code, so a model folder is the *shipped* one only when both its
files hash to them (:func:`rbcflow.classify.model_folder.model_origin`); any other folder is
user-supplied, refused by ``rbcflow analyze`` unless ``--allow-user-models`` is given, and
reported as such.

Retraining or recalibrating a shipped model changes its files: update these sums with it
(``tests/test_model_integrity.py`` fails until then and prints the new ones).
"""

from __future__ import annotations

SHIPPED_SHA256: dict[int, dict[str, str]] = {
    1: {
        "config.json": "1b5ac0afe2d85a42b6cc4963c1552e500c146f9bf2b697051952c8f4e2e83ebd",
        "weights.safetensors": "fdd1baded9a695cea4c92aa459fd99aa83c750d88dfbadedd080721bb867f812",
    },
    2: {
        "config.json": "cd3da559fba8449912c143358b16c3c0461b0d1e22a08605c7403c121fe12610",
        "weights.safetensors": "b407b4edd07f7f6aa5c35277561ec12e4c99d98c79e532b1c86d48072b350a7d",
    },
}
"""Stage -> file name -> SHA-256 (hex) of the shipped model folders ``rbcflow/models/stage{N}``."""
