"""The body of the sequential batch's classifier process (:mod:`rbcflow.batch.remote`).

Kept here, beside the classifier, so that the spawned child imports only what classifying
needs (torch, the networks, the model folders), not the batch and front-end modules its parent
already holds: that duplicate import cost the child about 1 CPU-s.
"""

from __future__ import annotations

import signal


def serve(conn, folders: tuple, torch_threads: int) -> None:
    """Load the classifier of ``folders`` (:func:`~rbcflow.classify.pending.load_checked`'s
    arguments), say ``("ready", device)``, then answer ``("predict", seqs, batch_size)`` with
    ``("ok", probabilities)`` until ``None`` or EOF; a failure is ``("error", kind, message)``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        import torch  # noqa: F401 - loaded first: apply() sets only the libraries loaded

        from rbcflow.classify.pending import load_checked
        from rbcflow.memory import reuse_freed_memory
        from rbcflow.threads import ThreadBudget, apply, available_cores

        reuse_freed_memory()  # each batch of crops arrives in fresh arrays
        # torch's share for all its work; one BLAS thread, whose idle pool would otherwise spin
        # beside the parent's two busy threads
        apply(ThreadBudget(cores=available_cores(), torch=max(1, torch_threads), blas=1))
        clf = load_checked(*folders)
        conn.send(("ready", str(clf.device)))
    except BaseException as exc:  # sent, then raised in the parent at its next request
        conn.send(("error", type(exc).__name__, str(exc)))
        return
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        _, seqs, batch_size = msg
        try:
            pred = clf.predict(seqs, batch_size=batch_size)
            conn.send(("ok", pred[["p_reliable", "p_tank_treading"]].to_numpy(float)))
        except BaseException as exc:
            conn.send(("error", type(exc).__name__, str(exc)))
