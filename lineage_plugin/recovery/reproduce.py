"""Retrain a model version exactly as recorded, and prove it by comparing predictions.

``reproduce`` re-runs the recorded training (its command line, in its working directory, at
its git commit; or a ``command`` given) in a child process whose Delta reads are pinned to
the recorded table versions by time travel. It then finds the run the child recorded and the
model it logged (never trusting the exit code alone), predicts with the original and the new
model on the recorded training data, and compares row by row.

The registry changes only when asked and only for a verified model: the child registers into a
scratch registry (see :mod:`lineage_plugin.recovery.training`), so a training script that
registers its model leaves no version behind; ``register=True`` registers a verified model and
records the ``verification`` event on the original version. A reproduction that does not verify
leaves versions, aliases, stages and tags as they were: its result is a tag on its own run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin import tags as T
from lineage_plugin.errors import LineageError, OperationInterruptedError
from lineage_plugin.progress import status_lines, tracked
from lineage_plugin.records import DeltaInput, Verification, drop_nulls
from lineage_plugin.recovery.reproduce_runs import (
    checkout_recorded_code,
    find_reproduced,
    plan_retraining,
)
from lineage_plugin.recovery.training import child_env, run_training, scratch_registry

if TYPE_CHECKING:
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.recovery.chain import ChainStep
    from lineage_plugin.recovery.chain_run import Rebuilt, StepReport


@dataclass(frozen=True, kw_only=True)
class ReproduceReport:
    """What a reproduction did and found.

    Attributes:
        name: Registered model name.
        version: The version reproduced.
        command: The command that retrained it.
        cwd: Where it ran.
        pinned: Table URI -> version the child's reads were pinned to (empty: not pinned).
        warnings: Environment and code drift found before training, and exit-code notes.
        exit_code: The child's exit code.
        verification: The comparison of predictions.
        event_id: The ``verification`` event recorded on the original version (verified
            reproductions only).
        likely_causes: When not verified, what differs between the original run and the
            reproduction (:func:`lineage_plugin.recovery.mismatch.likely_causes`).
        upstream: With ``upstream``, each pipeline step re-run before the training.
        scratch: The scratch directory the steps wrote to, when it was given (kept).
    """

    name: str
    version: str
    command: tuple[str, ...]
    cwd: str
    pinned: dict[str, int]
    warnings: tuple[str, ...]
    exit_code: int
    verification: Verification
    event_id: str | None = None
    likely_causes: tuple[str, ...] = ()
    upstream: tuple[StepReport, ...] = ()
    scratch: str | None = None

    @property
    def verified(self) -> bool:
        """The reproduced model predicts exactly (or within the tolerance) like the original,
        and no upstream step wrote other rows than its recorded run."""
        return self.verification.verified and all(s.identical is not False for s in self.upstream)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (sorted keys, no nulls)."""
        return drop_nulls(
            {
                "name": self.name,
                "version": self.version,
                "verified": self.verified,
                "command": list(self.command),
                "cwd": self.cwd,
                "pinned": self.pinned,
                "warnings": list(self.warnings),
                "exit_code": self.exit_code,
                "verification": self.verification.to_dict(),
                "event_id": self.event_id,
                "likely_causes": list(self.likely_causes),
                "upstream": [s.to_dict() for s in self.upstream] or None,
                "scratch": self.scratch,
            }
        )


def reproduce(
    name: str,
    version: str | int,
    *,
    command: str | None = None,
    tolerance: float = 0.0,
    register: bool = False,
    pin: bool = True,
    timeout: float | None = None,
    upstream: bool = False,
    scratch: str | None = None,
    progress: Callable[[str], None] | None = None,
    tracking_uri: str | None = None,
) -> ReproduceReport:
    """Retrain a model version with its recorded data and code, and compare predictions.

    Args:
        name: Registered model name.
        version: A version number, alias or stage.
        command: Train with this command line instead of the recorded one (run as given, in
            the recorded working directory when it exists).
        tolerance: Largest absolute difference between predictions counted as equal; 0 (the
            default) means exactly equal.
        register: Once verified, register the new model as a version of ``name``, tagged
            with what it reproduces and the verification. Whatever the training script
            registers itself goes to a scratch registry and is discarded.
        pin: Pin the child's Delta reads to the recorded versions (the default). ``False``
            reads whatever the tables hold now.
        timeout: Seconds to allow the training (and each upstream step).
        upstream: First re-run, in order, the recorded pipeline runs that wrote the table
            versions the training read (and those behind them), writing to scratch tables,
            never to the real ones; the training then reads the rebuilt versions. Each
            step's output is compared with the recorded version, row for row.
        scratch: With ``upstream``, the directory for the scratch tables (must be empty;
            kept afterwards). Default: a temporary directory, removed at the end.
        progress: Receives one line per step and the training's output lines.
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        A :class:`ReproduceReport`; ``verified`` says whether the predictions are equal.
        A verified one has recorded a ``verification`` event on the original version
        (``event_id``); one that is not verified has tagged its own run only.

    Raises:
        LineageError: Unknown version; no recorded data or command; the recorded table
            versions cannot be read (and, with ``upstream``, are not re-made); an upstream
            step cannot be re-run.
        VerificationError: The training (or a step) recorded no run or logged no model.
        OperationInterruptedError: Ctrl-C; the training was stopped, the registry untouched.

    Example:
        >>> report = reproduce("diabetes", "champion")
        >>> report.verified, report.verification.rows_compared
    """
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.tracking.reproducing import REPRODUCE_ENV, ReproduceRequest

    say = status_lines(progress)
    ws = Workspace(tracking_uri)
    steps = _upstream_steps(ws, name, version, pin, command) if upstream else ()
    rebuilt_versions = {(o.uri, o.version) for step in steps for o in step.writes}
    plan = plan_retraining(
        ws, name, version, command=command, pin=pin, rebuilt=rebuilt_versions, say=say
    )
    number, pins, data, warnings = plan.version, plan.pinned, plan.data, list(plan.warnings)
    mv = ws.model_version(name, number)
    original_run = ws.run(mv.run_id) if mv.run_id else None
    argv, cwd, code = list(plan.command), plan.cwd, plan.code
    # Three steps (train, compare the predictions, record the result), after the upstream.
    with (
        tracked(progress, f"Reproducing version {number}", 3 + len(steps)) as advance,
        _rebuilding(ws, steps, upstream, name, number, scratch, timeout, say, advance) as rebuilt,
    ):
        if rebuilt is not None:  # the training's own writes go to scratch tables too
            if original_run is not None:
                rebuilt.prepare(T.outputs_from_tags(original_run.data.tags), say)
            request = rebuilt.request(name, number, pins)
            data = rebuilt.compared_on(data)
        else:
            request = ReproduceRequest(
                token=uuid.uuid4().hex, model=name, version=number, pins=pins
            )
        advance(0, "training")
        # A command given runs as given; the recorded one runs at the recorded commit.
        with (
            checkout_recorded_code(None if command else code, argv, cwd, say) as (argv, cwd),
            scratch_registry() as registry,
        ):
            env = child_env(ws.tracking_uri, registry, original_run)
            env[REPRODUCE_ENV] = request.to_env()
            say(f"Retraining: {shlex.join(argv)}  (in {cwd})")
            if pins:
                say(f"  reads pinned to {plan.pinned_labels}")
            say("  what the training registers goes to a scratch registry, not to yours")
            exit_code = run_training(argv, cwd, env, timeout, say)
        run, model_uri = find_reproduced(ws, request.token, original_run, mv, exit_code)
        if exit_code != 0:
            warnings.append(
                f"The training process exited with code {exit_code} after recording run "
                f"{run.info.run_id} and logging its model; judged by the run and the model."
            )
        registered = _registered_version(ws, name, run.info.run_id)
        if registered is not None:
            warnings.append(
                f"The training registered version {registered} of '{name}' in your registry "
                "itself (it sets its own registry URI), so reproduce could not keep it out."
            )
        advance(1, "comparing predictions")
        say(f"Comparing predictions on {data.label} ...")
        try:
            comparison = _compare(ws, f"models:/{name}/{number}", model_uri, data, tolerance)
        except KeyboardInterrupt:
            raise OperationInterruptedError(
                f"Interrupted while comparing predictions. The retrained run {run.info.run_id} "
                "and its model stay in the tracking store; nothing was registered or recorded."
            ) from None
        verification = Verification(
            verified=comparison.identical,
            rows_compared=comparison.rows_compared,
            rows_identical=comparison.rows_identical,
            max_difference=comparison.max_difference,
            tolerance=tolerance,
            data=data.label,
            original_run_id=mv.run_id,
            reproduced_run_id=run.info.run_id,
            reproduced_model_uri=model_uri,
        )
        chain = tuple(rebuilt.steps) if rebuilt is not None else ()
        causes = tuple(_differing_steps(chain))
        if not verification.verified:  # say why: what the two runs recorded differently
            from lineage_plugin.recovery.mismatch import likely_causes

            causes += tuple(likely_causes(original_run, run))
        advance(1, "recording the result")
        event_id = None
        if verification.verified and not causes:
            if register or registered:
                verification = _register(ws, name, number, model_uri, run, verification, registered)
            event_id = _record(ws, name, number, mv.run_id, verification)
        else:
            # A failed reproduction leaves the registry as it was: its result stays on its run.
            _tag_run(ws, run.info.run_id, verification)
        advance(1)
    return ReproduceReport(
        name=name,
        version=number,
        command=tuple(argv),
        cwd=cwd,
        pinned=pins,
        warnings=tuple(warnings),
        exit_code=exit_code,
        verification=verification,
        event_id=event_id,
        likely_causes=causes,
        upstream=chain,
        scratch=scratch if chain else None,
    )


def _upstream_steps(
    ws: Workspace, name: str, version: str | int, pin: bool, command: str | None
) -> tuple[ChainStep, ...]:
    from lineage_plugin.recovery.chain import plan_chain

    if not pin:
        raise LineageError(
            "--upstream re-runs the pipeline on the recorded table versions, so it cannot be "
            "combined with --no-pin. Drop one of them."
        )
    return plan_chain(ws, name, str(version))


def _rebuilding(
    ws: Workspace,
    steps: tuple[ChainStep, ...],
    upstream: bool,
    name: str,
    version: str,
    scratch: str | None,
    timeout: float | None,
    say: Callable[[str], None],
    advance: Callable[..., None],
) -> contextlib.AbstractContextManager[Rebuilt | None]:
    """The upstream steps re-run into scratch tables (``None`` without ``upstream``)."""
    if not upstream:
        return contextlib.nullcontext(None)
    from lineage_plugin.recovery.chain_run import rebuilding

    if not steps:
        say("Nothing upstream to re-run: the training read only versions no recorded run wrote.")
    return rebuilding(
        ws,
        steps,
        model=name,
        version=version,
        root=scratch,
        timeout=timeout,
        say=say,
        advance=advance,
    )


def _differing_steps(steps: tuple[StepReport, ...]) -> list[str]:
    return [
        f"Upstream step {s.run_name or s.run_id} (re-run as {s.reproduced_run_id}) wrote "
        f"other rows than its recorded run: "
        + ", ".join(
            f"{o['table']}@v{o['version']}" for o in s.outputs if o.get("identical") is False
        )
        for s in steps
        if s.identical is False
    ]


def _compare(
    ws: Workspace, original_uri: str, reproduced_uri: str, data: DeltaInput, tolerance: float
) -> Any:
    from lineage_plugin.recovery.predictions import verify_predictions
    from lineage_plugin.recovery.reproduce_runs import load_model

    original = load_model(ws, original_uri)
    reproduced = load_model(ws, reproduced_uri)
    return verify_predictions(
        original, reproduced, uri=data.uri, version=data.version, tolerance=tolerance
    )


def _registered_version(ws: Workspace, name: str, run_id: str) -> str | None:
    """The version of ``name`` the training registered itself from its run, if any."""
    found = ws.registry_store.search_model_versions(
        f"name='{name.replace(chr(39), chr(39) * 2)}' and run_id='{run_id}'"
    )
    return str(found[0].version) if found else None


def _register(
    ws: Workspace,
    name: str,
    version: str,
    model_uri: str,
    run: Any,
    verification: Verification,
    registered: str | None,
) -> Verification:
    from mlflow.entities.model_registry import ModelVersionTag

    store = ws.registry_store
    if registered is None:
        # The storage location as source: a models:/ source would make a SQL registry look
        # the model up through the process's global tracking URI.
        model_id = model_uri.removeprefix("models:/")
        location = ws.tracking_store.get_logged_model(model_id).artifact_location
        mv = store.create_model_version(name, location, run_id=run.info.run_id, model_id=model_id)
        registered = str(mv.version)
    from lineage_plugin.store.recording import own_tag_writes

    verification = dataclasses.replace(verification, reproduced_version=registered)
    with own_tag_writes():
        store.set_model_version_tag(
            name, registered, ModelVersionTag(T.REPRODUCES_VERSION, version)
        )
        store.set_model_version_tag(
            name, registered, ModelVersionTag(T.VERIFICATION, json.dumps(verification.to_dict()))
        )
    return verification


def _tag_run(ws: Workspace, run_id: str, verification: Verification) -> None:
    ws.tracking_store.set_tag(run_id, _run_tag(T.VERIFICATION, json.dumps(verification.to_dict())))


def _run_tag(key: str, value: str) -> Any:
    from mlflow.entities import RunTag

    return RunTag(key, value)


def _record(
    ws: Workspace, name: str, version: str, run_id: str | None, verification: Verification
) -> str:
    from lineage_plugin.events import VERIFICATION, RegistryEvent, new_event_id
    from lineage_plugin.store.request_context import current_user

    now = int(time.time() * 1000)
    event = RegistryEvent(
        event_id=new_event_id(now),
        kind=VERIFICATION,
        name=name,
        version=version,
        time=now,
        user=current_user(),
        run_id=run_id,
        verification=verification,
    )
    ws.record_event(event)
    return event.event_id
