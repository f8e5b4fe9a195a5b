"""Write hooks for the ``deltalake`` package (delta-rs), and polars writes through it.

Hooked (each makes one commit, or none when there is nothing to change; ``optimize`` with a
``min_commit_interval`` may make several): ``write_deltalake`` (``deltalake.write_deltalake``
and ``deltalake.writer.write_deltalake``), ``DeltaTable.create``,
``DeltaTable.merge(...).execute()``, ``DeltaTable.update``, ``delete``, ``restore``,
``repair``, ``create_write_transaction``, ``DeltaTable.optimize.compact`` and ``z_order``.
``write_deltalake`` is patched in place, so a name imported before the hooks were installed
(``from deltalake import write_deltalake`` at the top of a script) is hooked too.
polars ``DataFrame.write_delta`` and ``LazyFrame.sink_delta`` call ``write_deltalake`` (or
``DeltaTable.merge``): :func:`labelled` makes the one commit they make recorded once, with
engine ``polars``. Not hooked: ``vacuum`` (its commits change no version's data),
``alter.*`` (metadata), ``create_checkpoint`` and ``cleanup_metadata`` (no commit).

**Which run.** The run a read made now would go to (:func:`~lineage_plugin.tracking.runs.
target_run`): the thread's active run, else the one run active in the process. Its commit is
stamped (:mod:`lineage_plugin.delta.stamps`) and each version it created is recorded on the
run as a :class:`~lineage_plugin.records.DeltaOutput`. With no active run the call runs exactly
as without the plugin: the commit is not stamped and not recorded, and, unlike a read, it is
not kept for the next run (the commit is made now, and a later run did not make it). With
several runs active in other threads it is not stamped either, with a warning (strict: an
error, before anything is written).

**Which version.** The call's stamp has a random ``mlflow.lineage.writeId``: after the call,
the commits after the version the table had before it (the loaded snapshot's, or the latest
for a path) that carry that id are the ones the call made, whatever another writer committed
meanwhile.

A failure of the plugin never breaks the write: the call's own errors are the user's, a
failure to find or describe what it wrote is a warning and marks the run incomplete
(``MLFLOW_LINEAGE_STRICT=true``: a :class:`~lineage_plugin.errors.CaptureError` after the write).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from lineage_plugin import settings
from lineage_plugin.delta import history
from lineage_plugin.delta import log as delta_log
from lineage_plugin.delta.own_reads import not_recorded
from lineage_plugin.delta.stamps import WRITE_ID_KEY, Stamp, operation_metrics, stamped_properties
from lineage_plugin.errors import AmbiguousRunError, CaptureError, LineageError, LineageWarning
from lineage_plugin.tracking.capture import session
from lineage_plugin.tracking.patching import bypassed, patch, patch_function
from lineage_plugin.tracking.reproducing import redirect_write
from lineage_plugin.tracking.runs import Target, target_run

ENGINE = "deltalake"
#: Where a ``TableMerger`` keeps the write its ``merge()`` call stamped, for ``execute()``.
_PLAN_ATTR = "_lineage_write"

_engine: ContextVar[str] = ContextVar("lineage_write_engine", default=ENGINE)
_in_write: ContextVar[bool] = ContextVar("lineage_in_write", default=False)


@dataclass(frozen=True)
class Write:
    """One stamped write call under way.

    Attributes:
        what: The call, for messages (``DeltaTable.update``).
        uri: The table's location.
        storage_options: Its credentials (used, never recorded).
        after: The table's version before the call (-1: no table yet); its commits are after.
        stamp: What the call's commits carry.
        engine: What wrote: ``deltalake`` or ``polars``.
    """

    what: str
    uri: str
    storage_options: dict[str, str] | None
    after: int
    stamp: Stamp
    engine: str


@contextlib.contextmanager
def _writing() -> Iterator[None]:
    token = _in_write.set(True)
    try:
        yield
    finally:
        _in_write.reset(token)


def labelled(original: Callable[..., Any], engine: str) -> Callable[..., Any]:
    """Wrap a library's write function so the commits it makes through the hooked ``deltalake``
    calls are recorded with ``engine`` (polars' ``write_delta``)."""

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _engine.set(engine)
        try:
            return original(*args, **kwargs)
        finally:
            _engine.reset(token)

    wrapper.__lineage_original__ = original  # type: ignore[attr-defined]
    return wrapper


def _latest_or_none(uri: str, storage_options: dict[str, str] | None) -> int:
    """The table's latest version before a write; -1 when there is no table (yet), or when it
    cannot be told (then every commit is looked at)."""
    try:
        with not_recorded():
            return delta_log.latest_version(uri, storage_options=storage_options)
    except Exception:
        return -1


def _ambiguous(what: str, runs: tuple[str, ...]) -> None:
    message = (
        f"{what} was called in a thread without an active run while several runs are active "
        f"({', '.join(runs)}); its commit is not stamped and not recorded. Start the run in the "
        "writing thread."
    )
    if settings.strict():
        raise AmbiguousRunError(message)
    warnings.warn(f"mlflow-delta-lineage: {message}", LineageWarning, stacklevel=4)


def writing_run(what: str) -> Target | None:
    """The run a write call made now belongs to (see the module doc), or ``None``: no run
    active, or several in other threads (a warning; strict: :class:`AmbiguousRunError`)."""
    target = target_run()
    if target.run_id is None:
        if target.ambiguous_runs:
            _ambiguous(what, target.ambiguous_runs)
        return None
    return target


def _plan(
    what: str, where: Callable[[dict[str, Any]], tuple[str, Any, int]], bound: Any, var: str | None
) -> Write | None:
    """The stamped write this call is, or ``None`` when it is not stamped."""
    target = writing_run(what)
    if target is None:
        return None
    if var is not None and bound.arguments.get(var):
        session().fail(
            f"{what}: commit properties were passed by position (deprecated by deltalake), so "
            "the commit is not stamped and not recorded; pass commit_properties= by keyword.",
            run_id=target.run_id,
        )
        return None
    uri, storage_options, after = where(bound.arguments)
    stamp = Stamp.new(target.run_id, target.experiment_id)
    return Write(what, uri, storage_options, after, stamp, _engine.get())


def record_write(write: Write) -> None:
    """Record the versions a stamped call created (found by its stamp) on its run."""

    def find() -> list[tuple[int, dict[str, Any]]]:
        return history.commits_with(
            write.uri,
            WRITE_ID_KEY,
            write.stamp.write_id,
            after=write.after,
            storage_options=write.storage_options,
        )

    def describe(version: int) -> delta_log.VersionInfo:
        return delta_log.resolve(write.uri, version, storage_options=write.storage_options)

    record_found(write.what, write.stamp.run_id, write.engine, find, describe)


def record_found(
    what: str,
    run_id: str,
    engine: str,
    find: Callable[[], list[tuple[int, dict[str, Any]]]],
    describe: Callable[[int], delta_log.VersionInfo],
    name: str | None = None,
) -> None:
    """Record on ``run_id`` the versions a write call created.

    Args:
        what: The call, for messages.
        run_id: The run that made it.
        engine: What wrote (``deltalake``, ``polars``, ``spark``).
        find: The ``(version, commitInfo)`` of the commits the call made; raises
            :class:`CaptureError` with the reason when they cannot be told.
        describe: The table version with its id and commit.
        name: The table's display name (a catalog name), else its last path segment.

    A failure marks the run incomplete with the reason (strict: an error), never the write.
    """
    try:
        with not_recorded():
            outputs = [
                describe(version).to_output(
                    engine=engine, name=name, operation_metrics=operation_metrics(info)
                )
                for version, info in find()
            ]
    except CaptureError as exc:
        session().fail(f"{what}: {exc}", run_id=run_id, error=type(exc))
        return
    except Exception as exc:
        session().fail(
            f"{what}: could not find the version it wrote ({type(exc).__name__}: {exc})",
            run_id=run_id,
        )
        return
    for out in outputs:
        session().record_output(out, run_id=run_id)


def _recorded(call: Callable[[], Any], write: Write) -> Any:
    """Make the write call, then record what it wrote."""
    try:
        with _writing():
            result = call()
    except BaseException:
        # Commits it made before failing (optimize in several commits) are still the run's.
        with contextlib.suppress(LineageError):
            record_write(write)
        raise
    record_write(write)
    return result


def _stamp(bound: Any, write: Write) -> None:
    bound.arguments["commit_properties"] = stamped_properties(
        bound.arguments.get("commit_properties"), write.stamp
    )


def _stamping(
    what: str,
    where: Callable[[dict[str, Any]], tuple[str, Any, int]],
    *,
    merge: bool = False,
    target: str = "self",
) -> Callable[[Any], Any]:
    """``make(original)`` for :func:`~lineage_plugin.tracking.patching.patch`: the call gets
    the run's stamp in its ``commit_properties``, and what it wrote is recorded (for
    ``merge``, by the ``execute()`` of the merger it returns). In a reproduction, the
    argument ``target`` (the table written) is first pointed at its scratch table."""

    def make(original: Any) -> Any:
        is_classmethod = isinstance(original, classmethod)
        function = original.__func__ if is_classmethod else original
        signature = inspect.signature(function)
        var = next(
            (p.name for p in signature.parameters.values() if p.kind is p.VAR_POSITIONAL), None
        )

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _in_write.get():
                return function(*args, **kwargs)
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:  # a bad call: let deltalake say what is wrong
                return function(*args, **kwargs)
            redirect_write(bound, target)  # first: a reproduction never writes a real table
            if bypassed():
                return function(*bound.args, **bound.kwargs)
            try:
                write = _plan(what, where, bound, var)
            except LineageError:
                raise  # strict mode
            except Exception as exc:  # a bug in the hook must never break the write
                warnings.warn(
                    f"mlflow-delta-lineage: {what} hook failed, the commit is not stamped: {exc!r}",
                    LineageWarning,
                    stacklevel=2,
                )
                write = None
            if write is None:
                with _writing():
                    return function(*bound.args, **bound.kwargs)
            _stamp(bound, write)
            if not merge:
                return _recorded(lambda: function(*bound.args, **bound.kwargs), write)
            merger = function(*bound.args, **bound.kwargs)
            merger.__dict__[_PLAN_ATTR] = write
            return merger

        wrapper.__lineage_original__ = function  # type: ignore[attr-defined]
        return classmethod(wrapper) if is_classmethod else wrapper

    return make


def _execute(original: Callable[..., Any]) -> Callable[..., Any]:
    """``TableMerger.execute``: record what the stamped ``merge()`` wrote."""

    @functools.wraps(original)
    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        write = self.__dict__.get(_PLAN_ATTR)
        if write is None or _in_write.get():
            return original(self, *args, **kwargs)
        return _recorded(lambda: original(self, *args, **kwargs), write)

    execute.__lineage_original__ = original  # type: ignore[attr-defined]
    return execute


# ---- where each call writes: (uri, storage options, version before) ----


def _of_table(table: Any) -> tuple[str, Any, int]:
    return table.table_uri, table._storage_options, table.version()


def _of_self(a: dict[str, Any]) -> tuple[str, Any, int]:
    return _of_table(a["self"])


def _of_optimizer(a: dict[str, Any]) -> tuple[str, Any, int]:
    return _of_table(a["self"].table)


def _of_target(key: str) -> Callable[[dict[str, Any]], tuple[str, Any, int]]:
    def where(a: dict[str, Any]) -> tuple[str, Any, int]:
        from deltalake import DeltaTable

        target = a[key]
        if isinstance(target, DeltaTable):
            return _of_table(target)
        storage_options = a.get("storage_options")
        uri = str(target)
        return uri, storage_options, _latest_or_none(uri, storage_options)

    return where


_TABLE_METHODS = ("update", "delete", "restore", "repair", "create_write_transaction")


def install(module: Any = None) -> None:
    """Patch ``deltalake``'s writes (called when it is imported, or at once if it already is)."""
    import deltalake.writer.writer as writer_module
    from deltalake import DeltaTable
    from deltalake.table import TableMerger, TableOptimizer

    # In place: `from deltalake import write_deltalake` may have run before this.
    patch_function(
        writer_module,
        "write_deltalake",
        _stamping("write_deltalake", _of_target("table_or_uri"), target="table_or_uri"),
    )
    patch(
        DeltaTable,
        "create",
        _stamping("DeltaTable.create", _of_target("table_uri"), target="table_uri"),
    )
    for method in _TABLE_METHODS:
        if method in DeltaTable.__dict__:
            patch(DeltaTable, method, _stamping(f"DeltaTable.{method}", _of_self))
    patch(DeltaTable, "merge", _stamping("DeltaTable.merge", _of_self, merge=True))
    patch(TableMerger, "execute", _execute)
    for method in ("compact", "z_order"):
        patch(TableOptimizer, method, _stamping(f"DeltaTable.optimize.{method}", _of_optimizer))
