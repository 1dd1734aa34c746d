"""A classifier whose model folders are checked now and loaded when first used.

Importing torch and building the two networks costs about 1.5-2 s of one core, and a batch run
by worker processes needs neither in its parent: each worker loads the folders itself
(:func:`rbcflow.batch.jobs.classifier_spec`). :class:`PendingClassifier` checks both folders at
once (config schema, checksums, shipped or not: :func:`~rbcflow.classify.model_folder.model_origin`,
no torch), so a damaged or refused model still stops the command before any work, and answers
what the batch needs from the folders alone: the checksums (skip decisions, report columns),
the folders, each stage's origin. Anything else (``predict``, ``device``,
``validated_rates``...) is the loaded :class:`~rbcflow.classify.inference.Classifier`'s, loaded
on that first use. The sequential batch never loads it either: it hands the folders to a
child process that loads them while the first front end runs
(:class:`rbcflow.batch.remote.ClassifierProcess`).

Loading it in a thread beside the first front end was measured and rejected: the import holds
the interpreter lock for most of its time and slowed the front end by more than it saved
(``rbcflow analyze`` of a 1,200-frame video, six interleaved runs: median 9.0 s against 8.2 s).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rbcflow.classify.model_folder import ModelOrigin, default_model_dir, model_origin
from rbcflow.errors import ModelError


class PendingClassifier:
    """The classifier of two model folders, checked now, loaded on first use.

    Parameters
    ----------
    stage1, stage2 : the model folders (None: the defaults,
        :func:`~rbcflow.classify.model_folder.default_model_dir`).
    device : ``None``, ``"auto"`` or ``"cpu"``: devices that cannot be refused. A named GPU
        can (no CUDA), so the caller loads that one at once instead.

    Raises
    ------
    ModelError
        A folder is damaged or breaks the schema (checked here, before anything loads), or
        holds the other stage's model.
    """

    def __init__(
        self,
        stage1: str | Path | None = None,
        stage2: str | Path | None = None,
        device: str | None = None,
    ):
        if device not in (None, "auto", "cpu"):
            raise ValueError(f"a pending classifier takes no named device, got {device!r}")
        self.stage1_dir = Path(stage1) if stage1 is not None else default_model_dir(1)
        self.stage2_dir = Path(stage2) if stage2 is not None else default_model_dir(2)
        self.requested_device = device
        origins = []
        for stage, folder in ((1, self.stage1_dir), (2, self.stage2_dir)):
            found = model_origin(folder)
            if found.stage != stage:
                msg = f"holds a stage-{found.stage} model, expected stage {stage}"
                raise ModelError(msg, folder)
            origins.append(found)
        # the folders' origins: what the report's columns read (``origin``, ``weights_sha256``)
        self.stage1: ModelOrigin = origins[0]
        self.stage2: ModelOrigin = origins[1]
        self._lock = threading.Lock()
        self._loaded: Any = None

    @property
    def stage1_checksum(self) -> str:
        return self.stage1.checksum

    @property
    def stage2_checksum(self) -> str:
        return self.stage2.checksum

    @property
    def is_loaded(self) -> bool:
        """Whether the networks have been loaded (a batch of worker processes never loads
        them in its parent)."""
        return self._loaded is not None

    def loaded(self):
        """The loaded :class:`~rbcflow.classify.inference.Classifier` (loaded on the first
        call, once, whichever thread calls).

        Raises
        ------
        ModelError
            The folders could not be loaded.
        """
        with self._lock:
            if self._loaded is None:
                from rbcflow.classify.inference import load_classifier

                clf = load_classifier(
                    self.stage1_dir, self.stage2_dir, device=self.requested_device
                )
                self._loaded = clf
            return self._loaded

    def __getattr__(self, name: str):
        # only called for what this class does not have: the loaded classifier's attributes
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.loaded(), name)


def load_checked(
    stage1: str | Path,
    stage2: str | Path,
    device: str | None,
    allow_user: bool,
    checksums: tuple[str | None, str | None],
):
    """Load the two folders as a process other than the one that checked them must: refusing
    user-supplied models unless ``allow_user``, and folders whose checksums are no longer
    ``checksums`` (the checking process'). Used by batch workers and the sequential batch's
    classifier process.

    Raises
    ------
    ModelError
        A folder is damaged, is user-supplied without ``allow_user``, or changed since.
    """
    from rbcflow.classify.inference import load_classifier
    from rbcflow.classify.model_folder import user_model_refusal

    if not allow_user:
        for folder in (stage1, stage2):
            found = model_origin(folder)
            if not found.shipped:
                raise ModelError(user_model_refusal(found), folder)
    clf = load_classifier(stage1, stage2, device=device)
    if (clf.stage1_checksum, clf.stage2_checksum) != tuple(checksums):
        raise ModelError("the model folder changed since the batch started", stage1)
    return clf
