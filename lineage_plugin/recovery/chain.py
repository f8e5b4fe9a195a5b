"""``reproduce --upstream``, the plan: the recorded pipeline runs behind a model version.

From the version's training run, the graph in the lineage index is walked upstream (as
``mlflow-lineage upstream`` does): each table version the training read was written by a
recorded run, which read other versions, written by other runs, and so on back to the raw
versions no recorded run wrote. Each of those runs is a **step**: its recorded command, at
its recorded commit, reading the versions it read and writing what it wrote. The steps are
put in an order where a step comes after every step that wrote what it reads (then by start
time), so each re-run reads what the steps before it rebuilt.

Nothing runs here (:mod:`lineage_plugin.recovery.chain_run` runs the steps); a step that
cannot be re-run (no command recorded, an interactive session, Spark) is an error before
anything runs, naming the run and what it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin.errors import LineageError
from lineage_plugin.records import drop_nulls

if TYPE_CHECKING:
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.records import CodeVersion, DeltaInput, DeltaOutput


@dataclass(frozen=True, kw_only=True)
class ChainStep:
    """One recorded pipeline run to re-run.

    Attributes:
        run_id: The recorded run.
        run_name: Its name.
        experiment_id: Its experiment (the re-run goes there too).
        start_time: When it started (epoch milliseconds).
        reads: The table versions it read.
        writes: The table versions it wrote.
        code: Its recorded entry point.
        command: The command line that re-runs it.
        cwd: Where that runs.
    """

    run_id: str
    run_name: str | None
    experiment_id: str
    start_time: int
    reads: tuple[DeltaInput, ...]
    writes: tuple[DeltaOutput, ...]
    code: CodeVersion | None
    command: tuple[str, ...]
    cwd: str

    @property
    def label(self) -> str:
        """``run <name> (<id>)``, for people."""
        return f"run {self.run_name} ({self.run_id})" if self.run_name else f"run {self.run_id}"

    def to_dict(self) -> dict[str, Any]:
        """The step as plain data (sorted keys, no nulls)."""
        return drop_nulls(
            {
                "run_id": self.run_id,
                "run_name": self.run_name,
                "command": list(self.command),
                "cwd": self.cwd,
                "reads": [i.label for i in self.reads],
                "writes": [o.label for o in self.writes],
            }
        )


def plan_chain(ws: Workspace, name: str, version: str) -> tuple[ChainStep, ...]:
    """The pipeline runs upstream of a model version, in the order they must re-run.

    Args:
        ws: The workspace (its lineage index holds the graph).
        name: Registered model name.
        version: The version number.

    Returns:
        The steps, writers before readers; empty when the training read only raw versions.

    Raises:
        LineageError: No lineage index; a step's run is gone, used Spark, or recorded no
            runnable command; the runs' reads and writes form a cycle.
    """
    from lineage_plugin.queries.upstream import upstream

    found = upstream(name, version, tracking_uri=ws.tracking_uri)
    steps = [
        _step(ws, r["run_id"], name, version) for r in found.runs if r["run_id"] != found.run_id
    ]
    return _in_order([s for s in steps if s.writes])


def _step(ws: Workspace, run_id: str, name: str, version: str) -> ChainStep:
    from lineage_plugin import tags as T
    from lineage_plugin.recovery.reproduce_runs import training_command

    run = ws.run(run_id)
    if run is None:
        raise LineageError(
            f"Run {run_id}, upstream of model '{name}' version {version}, no longer exists, "
            "so reproduce --upstream cannot re-run it. Reproduce without --upstream (the "
            "training reads the recorded versions as they are)."
        )
    lineage = T.run_lineage_from_tags(run_id, run.data.tags)
    what = ", ".join(o.label for o in lineage.outputs) or "nothing recorded"
    spark = [r.label for r in (*lineage.inputs, *lineage.outputs) if r.engine == "spark"]
    if spark:
        raise LineageError(
            f"Run {run_id} (it wrote {what}) read or wrote with Spark ({', '.join(spark)}); "
            "reproduce --upstream re-runs deltalake and polars pipelines only, because a "
            "Spark job's writes cannot be kept off the real tables. Reproduce without "
            "--upstream."
        )
    try:
        argv, cwd = training_command(lineage.code, None)
    except LineageError as exc:
        raise LineageError(
            f"Run {run_id}, which wrote {what} upstream of model '{name}' version {version}, "
            f"cannot be re-run: {exc} (--command applies to the training only; reproduce "
            "without --upstream to read the recorded versions as they are.)"
        ) from None
    return ChainStep(
        run_id=run_id,
        run_name=run.info.run_name,
        experiment_id=run.info.experiment_id,
        start_time=int(run.info.start_time or 0),
        reads=lineage.inputs,
        writes=lineage.outputs,
        code=lineage.code,
        command=tuple(argv),
        cwd=cwd,
    )


def _in_order(steps: list[ChainStep]) -> tuple[ChainStep, ...]:
    """Writers before the steps that read what they wrote; otherwise by start time."""
    wrote = {(o.uri, o.version): s.run_id for s in steps for o in s.writes}
    needs = {
        s.run_id: {wrote[(i.uri, i.version)] for i in s.reads if (i.uri, i.version) in wrote}
        - {s.run_id}
        for s in steps
    }
    waiting = sorted(steps, key=lambda s: (s.start_time, s.run_id))
    done: set[str] = set()
    ordered: list[ChainStep] = []
    while waiting:
        ready = next((s for s in waiting if needs[s.run_id] <= done), None)
        if ready is None:
            ids = ", ".join(s.run_id for s in waiting)
            raise LineageError(
                f"The upstream runs {ids} each read what another of them wrote (a cycle), so "
                "there is no order to re-run them in. Reproduce without --upstream."
            )
        waiting.remove(ready)
        done.add(ready.run_id)
        ordered.append(ready)
    return tuple(ordered)


def upstream_inputs(ws: Workspace, name: str, version: str) -> list[DeltaInput]:
    """The upstream tables of a model version, each at the version nearest the model (as
    the run that read it recorded it): what ``restore --upstream`` restores them to.

    Raises:
        LineageError: No lineage index; unknown model or version.
    """
    from lineage_plugin import tags as T
    from lineage_plugin.queries.upstream import upstream

    nearest: dict[str, dict[str, Any]] = {}
    for table in upstream(name, version, tracking_uri=ws.tracking_uri).tables:
        if table["uri"] not in nearest and table.get("read_by"):  # nearest first
            nearest[table["uri"]] = table
    found = []
    for uri, table in nearest.items():
        run = ws.run(table["read_by"])
        reads = T.inputs_from_tags(run.data.tags) if run is not None else ()
        found += [i for i in reads if (i.uri, i.version) == (uri, table["version"])][:1]
    return found
