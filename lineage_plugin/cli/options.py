"""What every ``mlflow-lineage`` command shares: options, the error boundary, output.

At the boundary, errors of the plugin (``LineageError``) and of MLflow become one
``Error: ...`` message on stderr with the error's exit code (2: bad input or a refused
operation; 130: interrupted), never a traceback. With ``--json`` the same error is also a JSON
object on stdout: ``{"error": ..., "refusals": [...]}``, with ``"go_ahead"`` (the command line
that would go ahead) and ``"plan"`` (a refused restore's plan) when known. Ctrl-C is
``Interrupted.`` and exit 130. Before a command runs, its tracking URI is checked to name an
existing MLflow store: the CLI never creates one.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
from collections.abc import Callable, Sequence
from typing import Any

import click
from click.core import ParameterSource

from lineage_plugin.errors import LineageError

PROG = "mlflow-lineage"


class CliError(click.ClickException):
    """A clean error message and its exit code (2: bad input or a refused operation).

    Args:
        message: What went wrong and what to do next.
        exit_code: The process's exit code.
        go_ahead: The command line that would let a refused operation go ahead, if any.
    """

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int = 2, go_ahead: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.go_ahead = go_ahead

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)
        if self.go_ahead:
            click.echo(f"To go ahead, run: {self.go_ahead}", err=True)


def boundary(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the plugin's and MLflow's exceptions, and Ctrl-C, into clean messages.

    Every error keeps its exit code (``LineageError.exit_code``; 130 for Ctrl-C, which wins
    over click's own ``Aborted!``). A refusal with ``go_ahead`` options names the command line
    that would go ahead. With ``--json``, the error is also printed as JSON on stdout.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        ctx = click.get_current_context()
        as_json = bool(kwargs.get("as_json"))
        try:
            return fn(*args, **kwargs)
        except LineageError as exc:
            error, cause = _lineage_error(ctx, exc), exc
        except MlflowException as exc:
            error, cause = CliError(f"MLflow: {exc.message}"), exc
        except (KeyboardInterrupt, click.Abort) as exc:
            if isinstance(exc, click.Abort) and not _interrupted(exc):
                raise
            error, cause = CliError("Interrupted.", exit_code=130), None
        except click.ClickException as exc:  # a usage error the command raised itself
            if as_json:
                _emit_error(exc.format_message())
            raise
        if as_json:
            _emit_error(error.format_message(), cause, error.go_ahead)
        raise error from cause

    return wrapper


def _lineage_error(ctx: click.Context, exc: LineageError) -> CliError:
    go_ahead = None
    if exc.go_ahead:
        try:
            go_ahead = go_ahead_command(ctx, exc.go_ahead)
        except ValueError:  # this command lacks the option: no command line to offer
            go_ahead = None
    return CliError(str(exc), exit_code=exc.exit_code, go_ahead=go_ahead)


def _interrupted(exc: click.Abort) -> bool:
    """Whether click turned a Ctrl-C into this ``Abort`` (a prompt does: ``raise Abort()``)."""
    return isinstance(exc.__context__, KeyboardInterrupt)


def _emit_error(
    message: str, exc: BaseException | None = None, go_ahead: str | None = None
) -> None:
    data: dict[str, Any] = {"error": message, "refusals": list(getattr(exc, "refusals", ()))}
    plan = getattr(exc, "plan", None)
    if plan is not None and hasattr(plan, "to_dict"):
        data["plan"] = plan.to_dict()
    if go_ahead:
        data["go_ahead"] = go_ahead
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def go_ahead_command(ctx: click.Context, go_ahead: Sequence[str]) -> str:
    """The command line that repeats this command with ``go_ahead`` options added.

    The command path, then the arguments and the options the user gave on the command line
    (not those from the environment or defaults), in the order the command declares them,
    shell-quoted. An option of ``go_ahead`` that the user gave with another value is replaced.

    Args:
        ctx: The command's click context (its parameters as parsed).
        go_ahead: Options to add, as tokens: ``("--allow-undo-deletes",)``,
            ``("--engine", "spark")``.

    Returns:
        For example ``mlflow-lineage restore churn 1 --yes --allow-undo-deletes``.

    Raises:
        ValueError: A token of ``go_ahead`` is not an option of the command (a refusal
            raised below a command that lacks the option).
    """
    params = ctx.command.params
    by_flag = {o: p for p in params if isinstance(p, click.Option) for o in _flags(p)}
    added: dict[str | None, list[str]] = {}
    tokens = iter(go_ahead)
    for token in tokens:
        param = by_flag.get(token)
        if param is None:
            raise ValueError(f"{token} is not an option of {ctx.command_path}.")
        added[param.name] = [token] if param.is_flag else [token, next(tokens, "")]
    arguments: list[str] = []
    options: list[str] = []
    for param in params:
        if param.name in added:
            options += added[param.name]
        elif param.name and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
            value = ctx.params.get(param.name)
            if isinstance(param, click.Option):
                options += _option_tokens(param, value)
            else:
                arguments += _texts(value)
    if any(a.startswith("-") for a in arguments):  # e.g. a model named "-x": after "--"
        return shlex.join([*_command_path(ctx), *options, "--", *arguments])
    return shlex.join([*_command_path(ctx), *arguments, *options])


def _command_path(ctx: click.Context) -> list[str]:
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or ctx.command.name or "")
        ctx = ctx.parent
    return [PROG, *reversed(names)]


def _flags(param: click.Option) -> list[str]:
    return [*param.opts, *param.secondary_opts]


def _option_tokens(param: click.Option, value: Any) -> list[str]:
    name = next((o for o in param.opts if o.startswith("--")), param.opts[0])
    if param.count:
        return [name] * int(value or 0)
    if param.is_flag:
        if value == param.flag_value:
            return [name]
        return param.secondary_opts[:1]
    values = value if param.multiple else [value]
    return [t for v in values for t in (name, *_texts(v))]


def _texts(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, tuple | list):
        return [t for v in value for t in _texts(v)]
    return [os.fspath(value) if isinstance(value, os.PathLike) else str(value)]


def _tracking_uri_origin(ctx: click.Context) -> str | None:
    source = ctx.get_parameter_source("tracking_uri")
    if source is ParameterSource.COMMANDLINE:
        return "--tracking-uri"
    if source is ParameterSource.ENVIRONMENT:
        return "MLFLOW_TRACKING_URI"
    return None  # MLflow's default, or set in this process: check_tracking_uri says which


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--tracking-uri`` and ``--json``, shared by every command, and the error boundary.

    The tracking URI is checked first (an existing MLflow store, see
    :func:`lineage_plugin.store.tracking_uri.check_tracking_uri`), once per command.
    """

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        from lineage_plugin.store.tracking_uri import check_tracking_uri

        origin = _tracking_uri_origin(click.get_current_context())
        check_tracking_uri(kwargs.get("tracking_uri"), origin=origin)
        return fn(*args, **kwargs)

    wrapped = boundary(checked)
    wrapped = click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (the documented, stable schema)."
    )(wrapped)
    return click.option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        metavar="URI",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI).",
    )(wrapped)


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


def keep_newest_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--keep-newest N``, shared by ``vacuum`` and ``check --all``."""
    return click.option(
        "--keep-newest",
        type=click.IntRange(min=0),
        default=3,
        show_default=True,
        metavar="N",
        help="Count each registered model's N newest versions as in use.",
    )(fn)


def duration_value(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    """Click callback: a length of time (``12h``, ``7d``) as hours."""
    from lineage_plugin.queries.times import TimeFormatError, parse_duration

    try:
        return parse_duration(value)
    except TimeFormatError as exc:
        raise click.BadParameter(str(exc)) from None


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
