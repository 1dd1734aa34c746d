"""The sequential batch's classifier in a child process, loaded while the front end runs.

Importing torch and building the two networks cost about 1.5-2.5 s of one core, and holding
the interpreter lock most of that time they cannot overlap the front end in the same process
(:mod:`rbcflow.classify.pending`). In a child process they can: :class:`ClassifierProcess`
spawns one (:data:`rbcflow.batch.parallel.START_METHOD`, never fork) when the batch starts,
the child loads the networks on the core the front end leaves idle, and each batch of finished
tracks goes to it through a pipe (a few hundred kB of 31x31 crops) and comes back as its
probabilities. The parent never imports torch.

It answers the rest of what the pipeline asks of a classifier from the model folders alone
(checksums, origins, stage 2's temperature, the validated rates: JSON, no torch), as
:class:`~rbcflow.classify.pending.PendingClassifier` does.

Threads: the child's torch gets :func:`rbcflow.threads.analyze_budget`'s share (one thread on
two cores) for all its work, the tail after the front end included.

Failures: a model the child cannot load, or an error while classifying, is raised in the
parent at the next ``predict`` as the same kind of error with the child's message; a child that
dies (killed, out of memory) raises :class:`ClassifierProcessError`. Ctrl-C goes to the parent
(the child ignores it) and the child ends with the batch.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Callable

import numpy as np
import pandas as pd

from rbcflow.batch.jobs import classifier_spec
from rbcflow.classify.calibration import config_rates, config_temperature
from rbcflow.classify.model_folder import read_config
from rbcflow.classify.pending import PendingClassifier
from rbcflow.classify.serve import serve
from rbcflow.config import ReportConfig
from rbcflow.errors import ModelError, RbcflowError
from rbcflow.threads import analyze_budget


class ClassifierProcessError(RbcflowError):
    """The classifier's child process ended before answering."""


class ClassifierProcess:
    """``pending``'s classifier, loaded and run in a spawned child process.

    Parameters
    ----------
    pending : the checked model folders.
    torch_threads : the child's torch threads (default: :func:`rbcflow.threads.analyze_budget`'s).
    """

    def __init__(self, pending: PendingClassifier, torch_threads: int | None = None):
        self.pending = pending
        self.stage1, self.stage2 = pending.stage1, pending.stage2
        self.stage1_dir, self.stage2_dir = pending.stage1_dir, pending.stage2_dir
        self.requested_device = pending.requested_device
        self.stage1_checksum = pending.stage1_checksum
        self.stage2_checksum = pending.stage2_checksum
        self._configs = (read_config(self.stage1_dir), read_config(self.stage2_dir))
        threads = analyze_budget().torch if torch_threads is None else torch_threads
        from rbcflow.batch.parallel import START_METHOD

        ctx = mp.get_context(START_METHOD)
        self._conn, child = ctx.Pipe()
        spec = classifier_spec(pending)
        folders = (spec.stage1, spec.stage2, spec.device, spec.allow_user, spec.checksums)
        self._proc = ctx.Process(
            target=serve,  # in rbcflow.classify: the child imports no batch module
            args=(child, folders, threads),
            name="rbcflow-classifier",
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._lock = threading.Lock()
        self._device: str | None = None
        self._failed: BaseException | None = None

    @property
    def stage2_temperature(self) -> float | None:
        """Stage 2's validated temperature, read from its config (as the loaded classifier's)."""
        return config_temperature(self._configs[1])

    def validated_rates(self, cfg: ReportConfig | None = None):
        """The models' validated confusion counts at ``cfg``'s thresholds, from their configs."""
        return config_rates(self._configs[0], self._configs[1], cfg)

    @property
    def failed(self) -> BaseException | None:
        """Why the child can classify nothing more (models it could not load, or its end);
        None while it can."""
        return self._failed

    @property
    def device(self) -> str:
        """Where the child runs the networks (waits for it to have loaded them)."""
        with self._lock:
            self._wait_ready()
            return str(self._device)

    def _receive(self):
        try:
            msg = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(timeout=5)
            code = self._proc.exitcode
            self._failed = ClassifierProcessError(
                "the classifier's process ended unexpectedly"
                + (f" (exit code {code})" if code is not None else "")
                + "; run the same command again to resume"
            )
            raise self._failed from None
        if msg[0] == "error":
            kind = ModelError if msg[1] == "ModelError" else RuntimeError
            raise kind(f"classifier process: {msg[2]}")
        return msg

    def _wait_ready(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._device is None:
            try:
                self._device = self._receive()[1]
            except BaseException as exc:
                self._failed = exc
                raise

    def predict(
        self,
        sequences: list[np.ndarray],
        *,
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """The tracks' ``p_reliable`` and ``p_tank_treading``, computed in the child."""
        seqs = [np.ascontiguousarray(s, dtype=np.uint8) for s in sequences]
        with self._lock:
            self._wait_ready()
            try:
                self._conn.send(("predict", seqs, batch_size))
            except (BrokenPipeError, OSError):
                self._receive()  # raises the child's end
            probs = self._receive()[1]
        if progress is not None:
            progress(len(seqs))
        return pd.DataFrame(probs, columns=["p_reliable", "p_tank_treading"])

    def close(self) -> None:
        """Stop the child at once: it holds nothing that must be saved, and letting it wind
        down (torch's interpreter shutdown) kept the command waiting 0.7 s."""
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join(timeout=5)
        self._conn.close()
