"""What every ``mlflow-lineage`` command shares: options, the error boundary, output.

Errors of the plugin (``LineageError``) and of MLflow become one ``Error: ...`` line with exit
code 2 at this boundary, never a traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import click

from lineage_plugin.errors import LineageError


class CliError(click.ClickException):
    """A clean error message and exit code 2 (bad input or a refused operation)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def boundary(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the plugin's and MLflow's exceptions into clean messages (no tracebacks)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except LineageError as exc:
            raise CliError(str(exc)) from exc
        except MlflowException as exc:
            raise CliError(f"MLflow: {exc.message}") from exc

    return wrapper


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--tracking-uri`` and ``--json``, shared by every command."""
    fn = click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (the documented, stable schema)."
    )(fn)
    fn = click.option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        metavar="URI",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI).",
    )(fn)
    return boundary(fn)


def retraining_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--command`` and ``--tolerance``, shared by ``reproduce`` and ``rollback``."""
    fn = click.option(
        "--tolerance",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Largest difference between predictions counted as equal (0: exact).",
    )(fn)
    return click.option(
        "--command", metavar="CMD", help="Train with CMD instead of the recorded command."
    )(fn)


def time_value(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """Click callback: a TIME option's value as epoch milliseconds."""
    from lineage_plugin.queries.times import TimeFormatError, parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except TimeFormatError as exc:
        raise click.BadParameter(str(exc)) from None


def emit(as_json: bool, data: dict[str, Any], text: Callable[[dict[str, Any]], str]) -> None:
    """Print ``data`` as JSON (``--json``) or as the text ``text`` renders from it."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(text(data))
