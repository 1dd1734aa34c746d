"""Command-line interface: ``rbcflow COMMAND``. One module per command family.

Command modules are imported only when their command runs, so ``rbcflow --version`` and
``rbcflow --help`` stay light (no pandas, torch, scipy or OpenCV: ``tests/test_startup.py``).
To add a command: write it in its own module of this package with ``@main.command("name")``
and add one line to :data:`COMMANDS` (name -> module, the first sentence of its help, which
``rbcflow --help`` shows; the test checks it against the command's docstring).

The ``rbcflow`` script is :func:`~rbcflow.cli.script.run`: the group, then a quick exit that
skips the interpreter's module teardown (0.5-0.7 s of every command).
"""

from rbcflow.cli.main import main
from rbcflow.cli.script import run

COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": (
        "rbcflow.cli.analyze",
        "Tank-treading fraction of each acquisition in PATHS (videos, or folders of them).",
    ),
    "track": (
        "rbcflow.cli.track",
        "Track the cells of each VIDEO and cut their 31x31 crop sequences.",
    ),
    "synth": (
        "rbcflow.cli.synth",
        "Write a synthetic bright-field shear-flow acquisition with its ground truth.",
    ),
    "train": (
        "rbcflow.cli.models",
        "Train a stage's classifier on labelled sequences; write a model folder.",
    ),
    "evaluate": ("rbcflow.cli.models", "Score stage-1 and stage-2 models on labelled sequences."),
    "classify": (
        "rbcflow.cli.classify",
        "Classify every sequence of a set in the authors' format (dataset.csv + img/).",
    ),
    "review": (
        "rbcflow.cli.review",
        "Review the calls of RESULTS_DIR (the output folder of rbcflow analyze) in a browser.",
    ),
    "export-labels": (
        "rbcflow.cli.labels",
        "Write every reviewed track of RESULTS_DIRS as a labelled set in the authors' format.",
    ),
    "patient": (
        "rbcflow.cli.patient",
        "A patient's samples over time against their own baseline (mean +/- 2 sd).",
    ),
    "reanalyze": (
        "rbcflow.cli.reanalyze",
        "Analyse the registry's acquisitions again with today's models, beside the old results.",
    ),
}
"""Every command: name -> (module that registers it, first sentence of its help)."""

main.lazy.update(COMMANDS)

__all__ = ["COMMANDS", "main", "run"]
