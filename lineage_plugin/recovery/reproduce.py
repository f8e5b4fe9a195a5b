"""Retrain a model version exactly as recorded, and prove it by comparing predictions.

``reproduce`` re-runs the recorded training (its command line, in its working directory, at
its git commit; or a ``command`` given) in a child process whose Delta reads are pinned to
the recorded table versions by time travel. It then finds the run the child recorded and the
model it logged (never trusting the exit code alone), predicts with the original and the new
model on the recorded training data, and compares row by row.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin import tags as T
from lineage_plugin.errors import VerificationError
from lineage_plugin.progress import status_lines, tracked
from lineage_plugin.records import DeltaInput, Verification, drop_nulls
from lineage_plugin.recovery.reproduce_runs import (
    checkout_recorded_code,
    find_reproduced,
    training_command,
)

if TYPE_CHECKING:
    from lineage_plugin.queries.workspace import Workspace

#: Tags a registered reproduction carries.


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
        event_id: The ``verification`` event recorded on the original version.
        likely_causes: When not verified, what differs between the original run and the
            reproduction (:func:`lineage_plugin.recovery.mismatch.likely_causes`).
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

    @property
    def verified(self) -> bool:
        """The reproduced model predicts exactly (or within the tolerance) like the original."""
        return self.verification.verified

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
        register: Register the new model as a version of ``name`` (unless the training
            registered it already), tagged with what it reproduces and the verification.
        pin: Pin the child's Delta reads to the recorded versions (the default). ``False``
            reads whatever the tables hold now.
        timeout: Seconds to allow the training.
        progress: Receives one line per step and the training's output lines.
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        A :class:`ReproduceReport`; ``verified`` says whether the predictions are equal.

    Raises:
        LineageError: Unknown version; no recorded data or command; the recorded table
            versions cannot be read.
        VerificationError: The training recorded no run or logged no model.

    Example:
        >>> report = reproduce("diabetes", "champion")
        >>> report.verified, report.verification.rows_compared
    """
    from lineage_plugin.queries.show import resolve
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.tracking.reproducing import REPRODUCE_ENV, ReproduceRequest

    say = status_lines(progress)
    ws = Workspace(tracking_uri)
    number = resolve(ws, name, str(version))
    mv = ws.model_version(name, number)
    lineage = T.model_version_lineage(mv)
    data = _training_table(lineage.inputs, name, number)
    warnings = _drift_warnings(ws, name, number, say)

    pins = {i.uri: i.version for i in lineage.inputs} if pin else {}
    request = ReproduceRequest(token=uuid.uuid4().hex, model=name, version=number, pins=pins)
    original_run = ws.run(mv.run_id) if mv.run_id else None
    code = lineage.run.code if lineage.run else None
    argv, cwd = training_command(code, command)
    # Three steps: train, compare the predictions, record the result.
    with tracked(progress, f"Reproducing version {number}", 3) as advance:
        advance(0, "training")
        # A command given runs as given; the recorded one runs at the recorded commit.
        with checkout_recorded_code(None if command else code, argv, cwd, say) as (argv, cwd):
            env = _child_env(ws.tracking_uri, original_run)
            env[REPRODUCE_ENV] = request.to_env()
            say(f"Retraining: {shlex.join(argv)}  (in {cwd})")
            if pins:
                say("  reads pinned to " + ", ".join(f"{i.label}" for i in lineage.inputs))
            exit_code = _run(argv, cwd, env, timeout, say)
        run, model_uri = find_reproduced(ws, request.token, original_run, mv, exit_code)
        if exit_code != 0:
            warnings.append(
                f"The training process exited with code {exit_code} after recording run "
                f"{run.info.run_id} and logging its model; judged by the run and the model."
            )
        advance(1, "comparing predictions")
        say(f"Comparing predictions on {data.label} ...")
        comparison = _compare(ws, f"models:/{name}/{number}", model_uri, data, tolerance)
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
        causes: tuple[str, ...] = ()
        if not verification.verified:  # say why: what the two runs recorded differently
            from lineage_plugin.recovery.mismatch import likely_causes

            causes = likely_causes(original_run, run)
        advance(1, "recording the result")
        registered = _registered_version(ws, name, run.info.run_id)
        if register or registered:
            verification = _register(ws, name, number, model_uri, run, verification, registered)
        event_id = _record(ws, name, number, mv.run_id, verification)
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
    )


def _training_table(inputs: tuple[DeltaInput, ...], name: str, version: str) -> DeltaInput:
    training = [i for i in inputs if i.context == "training"] or list(inputs)
    if not training:
        raise VerificationError(
            f"Model '{name}' version {version} has no recorded Delta inputs, so there is no "
            "recorded data to retrain on or to compare predictions on. See: mlflow-lineage "
            "show."
        )
    return training[0]


def _drift_warnings(
    ws: Workspace, name: str, version: str, say: Callable[[str], None]
) -> list[str]:
    from lineage_plugin.errors import LineageError
    from lineage_plugin.queries.check import check

    report = check(name, version, tracking_uri=ws.tracking_uri)
    data = [p["message"] for p in report.problems if p["kind"] == "data"]
    if data:
        raise LineageError(
            "The recorded table versions cannot be read, so the training cannot see its "
            "data again:\n  " + "\n  ".join(data)
        )
    found = [
        p["message"] if p["message"].startswith(p["kind"]) else f"{p['kind']}: {p['message']}"
        for p in report.problems
        if p["kind"] != "lineage"
    ]
    for message in found:
        say(f"Warning: {message}")
    return found


def _child_env(tracking_uri: str, original_run: Any) -> dict[str, str]:
    from lineage_plugin.settings import AUTOLOG_ENV

    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID",)}
    env.update({"MLFLOW_TRACKING_URI": tracking_uri, AUTOLOG_ENV: "true"})
    env.pop("MLFLOW_REGISTRY_URI", None)
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    if original_run is not None:
        env["MLFLOW_EXPERIMENT_ID"] = original_run.info.experiment_id
    return env


def _run(
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    timeout: float | None,
    say: Callable[[str], None],
) -> int:
    try:
        child = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        message = f"Could not start the training ({shlex.join(argv)}): {exc}"
        raise VerificationError(message) from exc
    output = child.stdout
    assert output is not None

    def relay() -> None:
        for line in output:
            say(f"  | {line.rstrip()}")

    relaying = threading.Thread(target=relay, name="lineage-reproduce-output", daemon=True)
    relaying.start()
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        raise VerificationError(
            f"The training ran longer than {timeout:g} s and was stopped."
        ) from None
    finally:
        relaying.join(timeout=10)
    return code


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
    verification = dataclasses.replace(verification, reproduced_version=registered)
    store.set_model_version_tag(name, registered, ModelVersionTag(T.REPRODUCES_VERSION, version))
    store.set_model_version_tag(
        name, registered, ModelVersionTag(T.VERIFICATION, json.dumps(verification.to_dict()))
    )
    return verification


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
