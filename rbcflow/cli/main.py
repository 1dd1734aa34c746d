"""The ``rbcflow`` command group and what its commands share.

The CLI is thin: it parses, calls library functions, turns progress callbacks into tqdm bars and
turns :class:`~rbcflow.errors.RbcflowError` into one-line messages (full traceback with
``--debug``). Each command lives in its own module of this package, imported only when that
command runs (:class:`LazyGroup`; the table is ``COMMANDS`` in :mod:`rbcflow.cli`), so
``rbcflow --version`` and ``rbcflow --help`` load neither pandas, torch, scipy nor OpenCV.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from rbcflow import __version__
from rbcflow.errors import RbcflowError

T = TypeVar("T")

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    """A click group whose commands live in modules imported when the command is asked for.

    ``lazy`` maps a command name to ``(module, short help)``; importing the module registers the
    command on the group (``@main.command(name)``). ``--help`` lists the short help of the table
    without importing anything (``tests/test_startup.py`` checks it matches the command's own).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            importlib.import_module(self.lazy[cmd_name][0])
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        limit = formatter.width - 6 - max(map(len, self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            # a stand-in carrying the table's help, shortened by click as the command would be
            cmd = self.commands.get(name) or click.Command(name, help=self.lazy[name][1])
            if not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="rbcflow")
@click.option("--debug", is_flag=True, help="Show full tracebacks (for developers).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """rbcflow: red-blood-cell dynamics in shear flow, from video to tank-treading fraction.

    \b
    Examples:
      rbcflow analyze video.avi                  # video -> rbcflow-results/report.csv
      rbcflow track video.avi --out tracks/      # front end only: tracked 31x31 sequences
      rbcflow synth demo.avi --seconds 5         # a synthetic acquisition with ground truth
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def is_debug() -> bool:
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if ctx.obj and ctx.obj.get("debug"):
            return True
        ctx = ctx.parent
    return False


def error_line(exc: BaseException) -> str:
    """One line for the user: the project's message, or the exception type and message."""
    if isinstance(exc, RbcflowError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def report_error(exc: BaseException, what: str | None = None) -> None:
    """Print an error as one line on stderr (plus the traceback under ``--debug``)."""
    if is_debug():
        traceback.print_exception(exc, file=sys.stderr)
    prefix = f"rbcflow: error: {what}: " if what else "rbcflow: error: "
    click.echo(prefix + error_line(exc), err=True)


def for_each_input(
    items: Iterable[T], work: Callable[[T], Any], name: Callable[[T], str] = str
) -> int:
    """Run ``work`` on each item; an :class:`RbcflowError` (or, outside ``--debug``, any
    exception) of one item is reported in one line and the others still run.

    Returns the number of items that failed.
    """
    failed = 0
    for item in items:
        try:
            work(item)
        except KeyboardInterrupt:
            raise
        except RbcflowError as exc:
            failed += 1
            report_error(exc)
        except Exception as exc:  # a bug, or an input problem we did not foresee
            if is_debug():
                raise
            failed += 1
            report_error(exc, name(item))
    return failed


@contextmanager
def progress_bar(
    total: int | None, desc: str, unit: str = "it", quiet: bool = False
) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr as a ``progress(n_done_since_last_call)`` callback."""
    if quiet:
        yield lambda n=1: None
        return
    from tqdm import tqdm

    with tqdm(
        total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True
    ) as bar:
        yield lambda n=1: bar.update(n)


def parse_scale(ctx: click.Context | None, param: click.Parameter | None, value: str | None):
    """click callback of ``--scale``: a factor in 0.1..10, ``auto`` (None: measured per video),
    or, when the option is not given, the default of :class:`~rbcflow.config.CropConfig`."""
    from rbcflow.config import CropConfig

    if value is None:
        return CropConfig().scale
    if value.strip().lower() == "auto":
        return None
    try:
        scale = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number or 'auto'") from None
    if not 0.1 <= scale <= 10:
        raise click.BadParameter(f"{value!r} is not a plausible scale (0.1 to 10)")
    return scale
