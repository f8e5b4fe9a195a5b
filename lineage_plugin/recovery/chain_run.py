"""``reproduce --upstream``, the run: re-run the pipeline steps into scratch tables.

Each step (:mod:`lineage_plugin.recovery.chain`) re-runs as ``reproduce`` re-runs a
training: its recorded command at its recorded commit, in a child process whose reads are
pinned to the versions the step read. What it writes goes to **scratch tables** under one
scratch directory, never to the real tables:

- before a step runs, each table it wrote gets a scratch table holding what the step wrote
  on top: the real table's version before the step's first write (copied), or the scratch
  version an earlier step left, or nothing for a table the step created;
- the child's writes to those tables are redirected there, and a write to any other table
  is refused (:mod:`lineage_plugin.tracking.reproducing`);
- its reads of versions an earlier step rebuilt read the scratch copies (pinned, translated),
  so each step reads what the steps before it re-made.

Each version a step wrote is compared with the real one, row for row (in any order);
a real version no longer readable is not compared, and the scratch copy stands in for it.
The scratch directory is removed at the end unless it was given.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lineage_plugin.errors import LineageError, VerificationError
from lineage_plugin.records import drop_nulls

if TYPE_CHECKING:
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.records import DeltaInput, DeltaOutput
    from lineage_plugin.recovery.chain import ChainStep
    from lineage_plugin.tracking.reproducing import ReproduceRequest, Scratch


@dataclass(frozen=True, kw_only=True)
class StepReport:
    """What re-running one pipeline step did.

    Attributes:
        run_id: The recorded run.
        run_name: Its name.
        reproduced_run_id: The run the re-run recorded.
        command: The command that re-ran it.
        exit_code: Its exit code.
        outputs: Per version it wrote: ``table``, ``uri``, ``version``, ``scratch_version``
            and ``identical`` (``None``: not compared, with a ``note`` saying why).
    """

    run_id: str
    run_name: str | None
    reproduced_run_id: str
    command: tuple[str, ...]
    exit_code: int
    outputs: tuple[dict[str, Any], ...]

    @property
    def identical(self) -> bool | None:
        """``False`` if a version differs; ``None`` if some could not be compared."""
        found = [o.get("identical") for o in self.outputs]
        if False in found:
            return False
        return None if None in found else True

    def to_dict(self) -> dict[str, Any]:
        """The step's result as plain data (sorted keys, no nulls)."""
        return drop_nulls(
            {
                "run_id": self.run_id,
                "run_name": self.run_name,
                "reproduced_run_id": self.reproduced_run_id,
                "command": list(self.command),
                "exit_code": self.exit_code,
                "identical": self.identical,
                "outputs": list(self.outputs),
            }
        )


@dataclass
class Rebuilt:
    """The scratch tables of one reproduction, and what each step did.

    Attributes:
        root: The scratch directory.
        paths: Real table URI -> its scratch table.
        versions: Real table URI -> {real version: scratch version}.
        steps: The steps run so far.
    """

    root: str
    paths: dict[str, str] = field(default_factory=dict)
    versions: dict[str, dict[int, int]] = field(default_factory=dict)
    steps: list[StepReport] = field(default_factory=list)

    def scratch(self) -> dict[str, Scratch]:
        """The scratch map of a reproducing child's request."""
        from lineage_plugin.tracking.reproducing import Scratch

        return {
            uri: Scratch(path=path, versions=dict(self.versions[uri]))
            for uri, path in self.paths.items()
        }

    def request(self, model: str, version: str, pins: dict[str, int]) -> ReproduceRequest:
        """A child's request: ``pins`` (real URIs and versions), writes confined to scratch."""
        from lineage_plugin.tracking.reproducing import ReproduceRequest

        return ReproduceRequest(
            token=uuid.uuid4().hex,
            model=model,
            version=version,
            pins=pins,
            scratch=self.scratch(),
            confined=True,
        )

    def compared_on(self, data: DeltaInput) -> DeltaInput:
        """The table version to compare predictions on: the recorded one while it is
        readable, else its rebuilt scratch copy."""
        import dataclasses

        from lineage_plugin.delta.log import normalize_uri
        from lineage_plugin.delta.readability import check_version_readable

        rebuilt = self.versions.get(data.uri, {}).get(data.version)
        if rebuilt is None or not check_version_readable(data.uri, data.version):  # readable
            return data
        return dataclasses.replace(
            data, uri=normalize_uri(self.paths[data.uri]), version=rebuilt, name=None
        )

    def prepare(self, writes: tuple[DeltaOutput, ...], say: Callable[[str], None]) -> None:
        """Give each table in ``writes`` a scratch table holding the state they start from."""
        first: dict[str, DeltaOutput] = {}
        for out in sorted(writes, key=lambda o: o.version):
            first.setdefault(out.uri, out)
        for uri, out in first.items():
            path = self.paths.setdefault(uri, os.path.join(self.root, _slug(len(self.paths), uri)))
            known = self.versions.setdefault(uri, {})
            before = out.version - 1
            if before < 0 or (before in known and known[before] == _latest(path)):
                continue
            say(f"  scratch {path}: a copy of {out.name or uri}@v{before}")
            known[before] = _copy(uri, before, path, out.label)


def _slug(n: int, uri: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", uri.rstrip("/").rsplit("/", 1)[-1]) or "table"
    return f"{n + 1:02d}-{name}"


def _latest(path: str) -> int | None:
    from deltalake import DeltaTable

    from lineage_plugin.delta.own_reads import not_recorded

    with not_recorded():
        try:
            return DeltaTable(path).version()
        except Exception:  # not created yet
            return None


def _copy(uri: str, version: int, path: str, wrote: str) -> int:
    """Copy ``uri``@``version`` into the scratch table ``path``; returns its scratch version."""
    from deltalake import DeltaTable, write_deltalake

    from lineage_plugin.delta.log import local_path
    from lineage_plugin.delta.own_reads import not_recorded

    with not_recorded():
        try:
            table = DeltaTable(local_path(uri) or uri, version=version)
            data = table.to_pyarrow_table()
        except Exception as exc:
            raise LineageError(
                f"reproduce --upstream: the recorded run wrote {wrote} on top of version "
                f"{version}, which cannot be read any more ({exc}), so its write cannot be "
                "re-made. Reproduce without --upstream."
            ) from None
        write_deltalake(
            path,
            data,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=table.metadata().partition_columns or None,
        )
        return DeltaTable(path).version()


@contextlib.contextmanager
def rebuilding(
    ws: Workspace,
    steps: tuple[ChainStep, ...],
    *,
    model: str,
    version: str,
    root: str | None,
    timeout: float | None,
    say: Callable[[str], None],
    advance: Callable[..., None],
) -> Iterator[Rebuilt]:
    """Re-run ``steps`` in order into scratch tables; yields what they rebuilt.

    Args:
        ws: The workspace.
        steps: The pipeline steps (:func:`~lineage_plugin.recovery.chain.plan_chain`).
        model: The model version reproduced (its runs are tagged with it).
        version: Its version.
        root: The scratch directory (kept); default a temporary one, removed at the end.
        timeout: Seconds allowed per step.
        say: Progress lines.
        advance: The progress bar's ``advance`` (one per step).

    Raises:
        LineageError: ``root`` is not empty; a step's starting state cannot be read.
        VerificationError: A step recorded no run, or none of its writes.
    """
    kept = root is not None
    if root is not None:
        if os.path.isdir(root) and os.listdir(root):
            raise LineageError(
                f"The scratch directory {root} is not empty. Give an empty or new directory, "
                "so nothing in it is mistaken for a rebuilt table."
            )
        os.makedirs(root, exist_ok=True)
    else:
        root = tempfile.mkdtemp(prefix="lineage-upstream-") if steps else ""
    rebuilt = Rebuilt(root=os.path.abspath(root) if root else "")
    try:
        for n, step in enumerate(steps, 1):
            advance(0, f"upstream step {n}/{len(steps)}")
            say(f"Upstream step {n}/{len(steps)}: re-running {step.label}")
            rebuilt.steps.append(_run_step(ws, step, rebuilt, model, version, timeout, say))
            advance(1)
        yield rebuilt
    finally:
        if not kept and rebuilt.root:
            shutil.rmtree(rebuilt.root, ignore_errors=True)


def _run_step(
    ws: Workspace,
    step: ChainStep,
    rebuilt: Rebuilt,
    model: str,
    version: str,
    timeout: float | None,
    say: Callable[[str], None],
) -> StepReport:
    import shlex

    from lineage_plugin.recovery.reproduce_runs import checkout_recorded_code, runs_tagged
    from lineage_plugin.recovery.training import child_env, run_training, scratch_registry
    from lineage_plugin.tracking.reproducing import REPRODUCE_ENV

    rebuilt.prepare(step.writes, say)
    request = rebuilt.request(model, version, {i.uri: i.version for i in step.reads})
    with (
        checkout_recorded_code(step.code, list(step.command), step.cwd, say) as (argv, cwd),
        scratch_registry() as registry,
    ):
        env = child_env(ws.tracking_uri, registry, ws.run(step.run_id))
        env[REPRODUCE_ENV] = request.to_env()
        say(f"  {shlex.join(argv)}  (in {cwd})")
        exit_code = run_training(argv, cwd, env, timeout, say)
    runs = runs_tagged(ws, request.token)
    if not runs:
        raise VerificationError(
            f"Re-running {step.label} recorded no MLflow run (it exited with code "
            f"{exit_code}; its output is above), so what it wrote is unknown."
        )
    outputs = _map_outputs(step, rebuilt, runs)
    return StepReport(
        run_id=step.run_id,
        run_name=step.run_name,
        reproduced_run_id=runs[0].info.run_id,
        command=tuple(argv),
        exit_code=exit_code,
        outputs=tuple(outputs),
    )


def _map_outputs(step: ChainStep, rebuilt: Rebuilt, runs: list[Any]) -> list[dict[str, Any]]:
    """Pair the versions the re-run wrote with the recorded ones (latest with latest), map
    them, and compare each pair."""
    from lineage_plugin import tags as T
    from lineage_plugin.delta.log import normalize_uri

    made: dict[str, list[int]] = {}
    for run in runs:
        for out in T.outputs_from_tags(run.data.tags):
            made.setdefault(out.uri, []).append(out.version)
    results: list[dict[str, Any]] = []
    for uri in sorted({o.uri for o in step.writes}):
        recorded = sorted((o for o in step.writes if o.uri == uri), key=lambda o: o.version)
        scratch_path = rebuilt.paths[uri]
        versions = sorted(made.get(normalize_uri(scratch_path), []))
        if not versions:
            raise VerificationError(
                f"Re-running {step.label} wrote nothing to the scratch copy of "
                f"{recorded[0].name or uri}, which the recorded run wrote "
                f"({', '.join(o.label for o in recorded)}). Check that the step writes the "
                "same table path as when it was recorded."
            )
        pairs = list(zip(reversed(recorded), reversed(versions), strict=False))
        for out, scratch_version in reversed(pairs):
            rebuilt.versions[uri][out.version] = scratch_version
            results.append(_compared(out, scratch_path, scratch_version))
        if len(versions) != len(recorded):
            results[-1]["note"] = (
                f"the re-run wrote {len(versions)} version(s), the recorded run "
                f"{len(recorded)}; the latest are paired"
            )
    return results


def _compared(out: DeltaOutput, scratch_path: str, scratch_version: int) -> dict[str, Any]:
    from lineage_plugin.delta.log import normalize_uri

    result: dict[str, Any] = {
        "table": out.name or out.uri,
        "uri": out.uri,
        "version": out.version,
        "scratch_version": scratch_version,
    }
    try:
        real = _rows(out.uri, out.version)
    except Exception as exc:
        result["note"] = f"the real version cannot be read any more ({exc}); not compared"
        return result
    again = _rows(normalize_uri(scratch_path), scratch_version)
    result["identical"] = _same(real, again)
    result["rows"] = len(real)
    return result


def _rows(uri: str, version: int) -> Any:
    from lineage_plugin.recovery.predictions import read_table_version

    return read_table_version(uri, version, engine="deltalake")


def _same(a: Any, b: Any) -> bool:
    """The same rows (as a multiset) with the same columns."""
    if sorted(a.columns) != sorted(b.columns) or len(a) != len(b):
        return False
    columns = sorted(a.columns)
    a = a[columns].sort_values(columns, ignore_index=True)
    b = b[columns].sort_values(columns, ignore_index=True)
    return bool(a.equals(b))
