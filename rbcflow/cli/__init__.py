"""Command-line interface: ``rbcflow COMMAND``. One module per command family."""

from rbcflow.cli.main import main

# Importing the command modules registers their commands on ``main``.
from rbcflow.cli import track as _track  # noqa: E402, F401  isort: skip
from rbcflow.cli import models as _models  # noqa: E402, F401  isort: skip
from rbcflow.cli import synth as _synth  # noqa: E402, F401  isort: skip
from rbcflow.cli import analyze as _analyze  # noqa: E402, F401  isort: skip

__all__ = ["main"]
