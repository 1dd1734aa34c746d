"""``rbcflow patient``: a patient's samples against their baseline; and ``analyze``'s sheet.

Heavy modules (pandas, the registry) are imported inside the functions, so that
``rbcflow --version`` stays light.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from rbcflow.cli.main import error_line, main

_KEY = "rbcflow.samples"


def _keep(ctx: click.Context, param: click.Parameter, value):
    ctx.meta.setdefault(_KEY, {})[param.name] = value
    return value


SAMPLE_OPTIONS = (
    click.option(
        "--samples",
        "samples_sheet",
        type=click.Path(path_type=Path, dir_okay=False),
        expose_value=False,
        callback=_keep,
        help="Metadata sheet (CSV or XLSX): acquisition, patient, sample, drawn_at columns "
        "(optional: shear_rate, medium, temperature_c, operator, notes, baseline). Writes "
        "OUT/samples.csv and records the samples in the registry.",
    ),
    click.option(
        "--name-pattern",
        metavar="REGEX",
        expose_value=False,
        callback=_keep,
        help="Take patient, sample and date from each acquisition's path with named groups, "
        "e.g. '(?P<year>\\d{4})/(?P<patient>[A-Z]+)(?P<month>\\d\\d)(?P<day>\\d\\d)_"
        "(?P<shear_rate>\\d+)s' for 2023/BG1017_10s01.avi.",
    ),
    click.option(
        "--registry",
        type=click.Path(path_type=Path, dir_okay=False),
        expose_value=False,
        callback=_keep,
        help="Patient registry (SQLite) to record the samples in [default: $RBCFLOW_REGISTRY, "
        "else registry.sqlite in your data folder]. Only with --samples or --name-pattern.",
    ),
)


def sample_options(command):
    """Decorate ``command`` with ``--samples``, ``--name-pattern`` and ``--registry``; their
    values are kept in the click context for :func:`load_samples` (not passed as arguments)."""
    for option in reversed(SAMPLE_OPTIONS):
        command = option(command)
    return command


def load_samples(paths, samples_sheet=None, name_pattern=None, registry=None):
    """``analyze``'s :class:`~rbcflow.samples.SampleSet` (None without a sheet or pattern); a
    bad sheet prints every problem, one line each, and exits with status 2. Options not given
    are taken from the current click context (:func:`sample_options`)."""
    ctx = click.get_current_context(silent=True)
    kept = ctx.meta.get(_KEY, {}) if ctx is not None else {}
    samples_sheet = samples_sheet or kept.get("samples_sheet")
    name_pattern = name_pattern or kept.get("name_pattern")
    registry = registry or kept.get("registry")
    if samples_sheet is None and name_pattern is None:
        return None
    from rbcflow.errors import RbcflowError
    from rbcflow.samples import batch_samples

    try:
        return batch_samples(paths, samples_sheet, name_pattern, registry)
    except RbcflowError as exc:
        for line in getattr(exc, "lines", None) or [error_line(exc)]:
            click.echo(f"rbcflow: error: {' '.join(line.split())}", err=True)
        sys.exit(2)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "patient"


@main.command("patient")
@click.argument("patient_id", required=False)
@click.option(
    "--registry",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Patient registry [default: $RBCFLOW_REGISTRY, else registry.sqlite in your data folder].",
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The patient's page [default: patient-ID.html in the current folder].",
)
@click.option(
    "--reanalysis",
    metavar="NAME|latest",
    help="Show the samples as this reanalysis (rbcflow reanalyze) found them; samples it did "
    "not reanalyse keep their first figures (marked as other models). --list names them.",
)
@click.option(
    "--list", "list_", is_flag=True, help="List the patients, their last draw and reanalyses."
)
def patient(patient_id, registry, out, list_, reanalysis):
    """A patient's samples over time against their own baseline (mean +/- 2 sd).

    Prints one line per sample and writes a self-contained page with the timeline. The
    baseline is the draws marked baseline in the sheet, else every earlier passing draw once
    there are 4; the latest draw is flagged "below baseline" under the band.

    \b
    Examples:
      rbcflow patient --list
      rbcflow patient BG --out BG.html
      rbcflow patient BG --reanalysis latest
    """
    from rbcflow.errors import RbcflowError
    from rbcflow.run_settings import SamplesConfig
    from rbcflow.samples.baseline import assess, summary_lines
    from rbcflow.samples.patient import write_patient_page
    from rbcflow.samples.registry import default_registry, patient_history, patients, reanalyses

    path = registry or default_registry()
    try:
        if not path.is_file():
            raise RbcflowError("no registry here (analyze with --samples records one)", path)
        if list_:
            for p in patients(path):
                click.echo(
                    f"{p['patient']}\t{p['samples']} sample(s)\tlast drawn {p['last_drawn']}"
                )
            for r in reanalyses(path):
                click.echo(
                    f"reanalysis {r['reanalysis']}\t{r['samples']} sample(s) of "
                    f"{r['patients']} patient(s)\tlast analysed {r['analysed_at']}"
                )
            return
        if not patient_id:
            raise click.UsageError("give a patient ID, or --list")
        done = reanalyses(path, patient_id)
        if reanalysis == "latest":
            if not done:
                raise RbcflowError(f"no reanalysis of patient {patient_id!r} in the registry", path)
            reanalysis = done[-1]["reanalysis"]
        elif reanalysis is not None and reanalysis not in {r["reanalysis"] for r in done}:
            known = ", ".join(r["reanalysis"] for r in done) or "none"
            raise RbcflowError(
                f"no reanalysis {reanalysis!r} of patient {patient_id!r} (known: {known})", path
            )
        history = patient_history(path, patient_id, reanalysis)
        if not history:
            raise RbcflowError(f"no sample of patient {patient_id!r} in the registry", path)
        cfg = SamplesConfig()
        if reanalysis is not None:
            n = sum(1 for s in history if s.get("reanalysis") == reanalysis)
            click.echo(f"as reanalysed in {reanalysis}: {n} of {len(history)} sample(s)")
        elif done:
            last = done[-1]["reanalysis"]
            click.echo(
                f"reanalysed in {last} ({done[-1]['samples']} sample(s)): "
                f"rbcflow patient {patient_id} --reanalysis {last}"
            )
        for line in summary_lines(patient_id, assess(history, cfg), cfg.fraction_decimals):
            click.echo(line)
        page = write_patient_page(
            out or Path(f"patient-{_safe(patient_id)}.html"), patient_id, history, cfg, reanalysis
        )
    except RbcflowError as exc:
        click.echo(f"rbcflow: error: {error_line(exc)}", err=True)
        sys.exit(2)
    click.echo(f"page: {page}")


__all__ = ["load_samples", "patient", "sample_options"]
