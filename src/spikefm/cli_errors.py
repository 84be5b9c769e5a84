"""How the command line reports a mistake: one ``error: ...`` line and exit code 2, not a traceback.

Every ``spikefm`` command runs inside :class:`ErrorReportingGroup` (the Typer app's click group), so a
command added later gets this for free. Errors that describe the user's input (bad data, a bad
recipe value, a missing or unwritable file, an accelerator that is not there) print one line;
``--debug`` anywhere on the command line, or ``SPIKEFM_DEBUG=1``, lets the traceback through. Any other
exception is a bug and keeps its traceback. Data warnings (:class:`spikefm.data.checks.DataWarning`)
print as one ``warning: ...`` line each.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

__all__ = ["ErrorReportingGroup", "is_user_error", "describe", "DEBUG_FLAG"]

DEBUG_FLAG = "--debug"


_USER_ERRORS = (ValueError, KeyError, OSError, FloatingPointError)
"""ValueError covers DataError, ConfigError and pydantic's ValidationError; KeyError the model registry's
unknown names; OSError missing or unwritable files; FloatingPointError a non-finite training loss (its
message says which setting to change)."""


def is_user_error(error: BaseException) -> bool:
    """An error that describes the user's input (reported in one line) rather than a bug in spikefm."""
    if isinstance(error, _USER_ERRORS):
        return True
    # Lightning's MisconfigurationException: an accelerator, device count or strategy this machine lacks.
    # Looked up only if Lightning is loaded, so that `spikefm --help` does not import it.
    lightning = sys.modules.get("lightning.fabric.utilities.exceptions")
    return lightning is not None and isinstance(error, lightning.MisconfigurationException)


def describe(error: BaseException) -> str:
    """The error as one line: KeyError without its quotes, OSError as 'reason: file', newlines folded."""
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = str(error.args[0])
    elif isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.strerror}: {error.filename}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


class ErrorReportingGroup(TyperGroup):
    """A Typer group whose commands report user errors as one line (rc 2) unless ``--debug`` is given."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `--debug` may come anywhere before a literal `--`; it is taken out before the command parses.
        cut = args.index("--") if "--" in args else len(args)
        head, tail = args[:cut], args[cut:]
        if DEBUG_FLAG in head:
            ctx.meta["spikefm.debug"] = True
            head = [a for a in head if a != DEBUG_FLAG]
        return super().parse_args(ctx, head + tail)

    def invoke(self, ctx: click.Context) -> Any:
        debug = ctx.meta.get("spikefm.debug", False) or os.environ.get("SPIKEFM_DEBUG", "") not in ("", "0")
        console = Console(stderr=True, soft_wrap=True)  # errors and warnings go to stderr
        with warnings.catch_warnings():
            _show_data_warnings(console)
            try:
                return super().invoke(ctx)
            except Exception as error:
                if debug or not is_user_error(error):
                    raise
                console.print(f"[bold red]error:[/] {escape(describe(error))}", highlight=False)
                raise typer.Exit(2) from None


def _show_data_warnings(console: Console) -> None:
    """Print spikefm's data warnings as ``warning: ...`` lines (every time, not once per call site)."""
    from spikefm.data.checks import DataWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if issubclass(category, DataWarning):
            console.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.simplefilter("always", DataWarning)
    warnings.showwarning = show
