"""``rbcflow review``: check the uncertain calls in a browser; the fraction follows."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from rbcflow.cli.main import CONTEXT_SETTINGS, main, report_error
from rbcflow.errors import RbcflowError
from rbcflow.run_settings import ReviewConfig

_DEFAULT = ReviewConfig()


@main.command("review", context_settings=CONTEXT_SETTINGS)
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=_DEFAULT.port,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--host",
    default=_DEFAULT.host,
    show_default=True,
    help="Address to listen on (anything but 127.0.0.1 exposes it to the network).",
)
@click.option("--no-browser", is_flag=True, help="Print the URL without opening a browser.")
@click.option("--reviewer", default=None, help="Name recorded with each decision [login name].")
def review(results_dir: Path, port: int, host: str, no_browser: bool, reviewer: str | None):
    """Review the calls of RESULTS_DIR (the output folder of rbcflow analyze) in a browser.

    Opens a local web page (its URL carries a token: keep it to yourself). Keys: t
    tank-treading, f flipping, u unreliable, space the call is right, backspace undo, arrows
    move. Every decision is saved at once to RESULTS_DIR/NAME/review.csv, and report.csv
    gains the reviewed fraction.

    \b
    Example:
      rbcflow review rbcflow-results/
    """
    from rbcflow.review.serve import serve

    if reviewer is None:
        try:
            reviewer = getpass.getuser()
        except (KeyError, OSError):
            reviewer = ""
    try:
        serve(
            results_dir,
            host=host,
            port=port,
            reviewer=reviewer,
            open_browser=not no_browser,
            echo=click.echo,
        )
    except RbcflowError as exc:
        report_error(exc)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("stopped")
