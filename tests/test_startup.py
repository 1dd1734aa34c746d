"""Start-up stays light: ``rbcflow --version`` / ``--help`` load no heavy library, and the
lazily loaded command table matches the commands themselves."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rbcflow.cli import COMMANDS, main

HEAVY = ("torch", "pandas", "scipy", "cv2", "numba", "matplotlib", "tifffile")

_PROBE = """
import json, sys
from rbcflow.cli import main
try:
    main(sys.argv[1:], prog_name="rbcflow")
except SystemExit:
    pass
print("\\nMODULES " + json.dumps(sorted(sys.modules)))
"""


def _modules_after(*args: str) -> tuple[str, set[str]]:
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=True
    )
    out, _, mods = res.stdout.rpartition("\nMODULES ")
    return out, set(json.loads(mods))


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_load_no_heavy_library(flag):
    out, loaded = _modules_after(flag)
    assert "rbcflow" in out
    assert "rbcflow.cli.main" in loaded  # the probe really ran the CLI
    assert sorted(m for m in HEAVY if m in loaded) == []


def test_a_command_module_loads_when_its_command_runs():
    out, loaded = _modules_after("synth", "--help")
    assert "ground truth" in out
    assert "rbcflow.cli.synth" in loaded
    assert "rbcflow.cli.analyze" not in loaded  # only the command asked for


def test_help_lists_every_command_with_its_own_short_help():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    for name, (module, short) in COMMANDS.items():
        importlib.import_module(module)
        cmd = main.commands[name]  # the module registered the command under that name
        assert cmd.callback.__module__ == module
        assert cmd.get_short_help_str(limit=1000) == short
        assert f"  {name} " in res.output


def test_unknown_command_is_a_usage_error():
    res = CliRunner().invoke(main, ["no-such-command"])
    assert res.exit_code == 2
    assert "No such command" in res.output


def test_a_worker_batch_checks_its_models_without_torch():
    # the parent of --workers N / --scheduler checks the folders and sends them; it never needs
    # the networks (rbcflow.classify.pending)
    code = (
        "import sys\n"
        "from rbcflow.batch.jobs import classifier_spec\n"
        "from rbcflow.classify.pending import PendingClassifier\n"
        "spec = classifier_spec(PendingClassifier())\n"
        "print(spec.stage1.endswith('stage1'), len(spec.checksums[0]), 'torch' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["True", "12", "False"]
