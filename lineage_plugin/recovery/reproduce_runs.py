"""What ``reproduce`` needs around the child process: its command, its code, and its results.

- :func:`plan_retraining`: what a reproduction would run, read and compare on (also what
  ``rollback --dry-run`` shows);
- :func:`training_command`: the recorded command line (or the one given), runnable again;
- :func:`checkout_recorded_code`: run at the recorded git commit (a temporary worktree) when
  the repository has moved on;
- :func:`find_reproduced`: the run the child recorded and the model it logged, found by the
  reproduction's tag, never by the exit code;
- :func:`load_model`: a pyfunc model from the registry or a logged model.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin.errors import LineageError, VerificationError
from lineage_plugin.records import drop_nulls

if TYPE_CHECKING:
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.records import CodeVersion, DeltaInput


@dataclass(frozen=True, kw_only=True)
class RetrainingPlan:
    """What retraining a model version would run, read, and compare predictions on.

    Attributes:
        name: Registered model name.
        version: The version number.
        command: The command line.
        cwd: Where it runs.
        code: The recorded entry point (``None`` when nothing was recorded).
        pinned: Table URI -> version the reads are pinned to (empty: not pinned).
        pinned_labels: The pinned tables as ``name@vN``, for people.
        data: The recorded training table the predictions are compared on.
        warnings: Environment and code drift found (as ``check`` reports it).
    """

    name: str
    version: str
    command: tuple[str, ...]
    cwd: str
    code: CodeVersion | None
    pinned: dict[str, int]
    pinned_labels: str
    data: DeltaInput
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data (sorted keys, no nulls)."""
        return drop_nulls(
            {
                "command": list(self.command),
                "cwd": self.cwd,
                "git_commit": self.code.git_commit if self.code else None,
                "pinned": self.pinned,
                "data": self.data.label,
                "warnings": list(self.warnings),
            }
        )


def plan_retraining(
    ws: Workspace,
    name: str,
    version: str | int,
    *,
    command: str | None = None,
    pin: bool = True,
    rebuilt: Collection[tuple[str, int]] = (),
    say: Callable[[str], None] | None = None,
) -> RetrainingPlan:
    """What retraining ``name`` ``version`` would do; nothing runs.

    Args:
        ws: The workspace of the registry.
        name: Registered model name.
        version: A version number, alias or stage.
        command: A command line given instead of the recorded one.
        pin: Pin the reads to the recorded versions.
        rebuilt: Table versions ``(uri, version)`` that ``reproduce --upstream`` re-makes:
            their being unreadable is a warning, not an error.
        say: Receives a warning line per drift found.

    Raises:
        LineageError: Unknown version; no recorded data or command; the recorded table
            versions cannot be read.
    """
    from lineage_plugin import tags as T
    from lineage_plugin.queries.show import resolve

    number = resolve(ws, name, str(version))
    lineage = T.model_version_lineage(ws.model_version(name, number))
    data = _training_table(lineage.inputs, name, number)
    warnings = _drift_warnings(ws, name, number, set(rebuilt), say or (lambda _line: None))
    code = lineage.run.code if lineage.run else None
    argv, cwd = training_command(code, command)
    return RetrainingPlan(
        name=name,
        version=number,
        command=tuple(argv),
        cwd=cwd,
        code=code,
        pinned={i.uri: i.version for i in lineage.inputs} if pin else {},
        pinned_labels=", ".join(i.label for i in lineage.inputs) if pin else "",
        data=data,
        warnings=tuple(warnings),
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
    ws: Workspace,
    name: str,
    version: str,
    rebuilt: set[tuple[str, int]],
    say: Callable[[str], None],
) -> list[str]:
    from lineage_plugin.queries.check import check

    report = check(name, version, tracking_uri=ws.tracking_uri)

    def remade(p: dict[str, Any]) -> bool:
        return p["kind"] == "data" and (p.get("uri"), p.get("version")) in rebuilt

    data = [p["message"] for p in report.problems if p["kind"] == "data" and not remade(p)]
    if data:
        raise LineageError(
            "The recorded table versions cannot be read, so the training cannot see its "
            "data again:\n  " + "\n  ".join(data)
        )
    found = [
        (p["message"] if p["message"].startswith(p["kind"]) else f"{p['kind']}: {p['message']}")
        + (" (reproduce --upstream re-makes it in a scratch table)" if remade(p) else "")
        for p in report.problems
        if p["kind"] != "lineage"
    ]
    for message in found:
        say(f"Warning: {message}")
    return found


def training_command(code: CodeVersion | None, command: str | None) -> tuple[list[str], str]:
    """The command line and working directory that retrain a model version.

    Args:
        code: The recorded entry point.
        command: A command line given instead (run in the recorded working directory).

    Returns:
        ``(argv, cwd)``.

    Raises:
        LineageError: Nothing runnable was recorded and no ``command`` was given.
    """
    recorded_cwd = code.cwd if code and code.cwd and os.path.isdir(code.cwd) else None
    if command:
        return shlex.split(command), recorded_cwd or os.getcwd()
    hint = "Pass the training command with --command."
    if code is None or not code.argv:
        raise LineageError(f"No training command was recorded for this version. {hint}")
    from lineage_plugin.tracking.environment import REDACTED, interactive_process

    script, *args = code.argv
    kind = interactive_process(code.argv)
    if kind:
        raise LineageError(
            f"The version was trained in an interactive or test process ({kind}: "
            f"{script or 'stdin'}), which cannot be re-run. {hint}"
        )
    if REDACTED in code.argv:
        raise LineageError(
            "The recorded command line had secrets, which were not recorded "
            f"({shlex.join(code.argv)}). {hint}"
        )
    cwd = recorded_cwd or os.getcwd()
    path = script if os.path.isabs(script) else os.path.join(code.cwd or cwd, script)
    if not os.path.isfile(path):
        raise LineageError(f"The recorded training script {path} is gone. {hint}")
    return [sys.executable, path, *args], cwd


def _git(where: str, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", where, *args], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


@contextlib.contextmanager
def checkout_recorded_code(
    code: CodeVersion | None, argv: list[str], cwd: str, say: Callable[[str], None]
) -> Iterator[tuple[list[str], str]]:
    """Run at the recorded git commit: a temporary worktree when the checkout has moved on.

    Yields the command line and working directory to use, mapped into the worktree when
    one was made. Without a recorded commit, when HEAD is the recorded commit with no
    uncommitted changes, or when the original ran with uncommitted changes (its exact code
    is in no commit), nothing changes.

    Raises:
        LineageError: The recorded commit is not in the repository.
    """
    from lineage_plugin.tracking.environment import git_state

    if code is None or not code.git_commit or len(argv) < 2:
        yield argv, cwd
        return
    if code.git_dirty:
        say(
            "Warning: the original training ran with uncommitted changes, so its exact code "
            f"is not in git (commit {code.git_commit[:12]} lacks them); running the code as "
            "it is now."
        )
        yield argv, cwd
        return
    head, dirty = git_state(argv[1:], cwd)
    if head is None or (head == code.git_commit and not dirty):
        yield argv, cwd
        return
    entry = os.path.dirname(argv[1]) if os.path.isfile(argv[1]) else cwd
    top = _git(entry, "rev-parse", "--show-toplevel")
    with tempfile.TemporaryDirectory(prefix="lineage-reproduce-") as tmp:
        tree = os.path.join(tmp, "code")
        try:
            _git(top, "worktree", "add", "--detach", tree, code.git_commit)
        except subprocess.CalledProcessError as exc:
            raise LineageError(
                f"The recorded commit {code.git_commit} is not in the repository {top} "
                f"({exc.stderr.strip()}). Fetch it, or pass --command to train with other code."
            ) from exc
        say(f"Checked out the recorded commit {code.git_commit[:12]} in {tree}")

        def inside(path: str) -> str:
            return tree + path[len(top) :] if path == top or path.startswith(top + os.sep) else path

        try:
            yield [argv[0], *(inside(a) for a in argv[1:])], inside(cwd)
        finally:
            subprocess.run(
                ["git", "-C", top, "worktree", "remove", "--force", tree],
                capture_output=True,
                check=False,
            )


def _logged_model_name(ws: Workspace, mv: Any) -> str | None:
    if getattr(mv, "model_id", None):
        try:
            return ws.tracking_store.get_logged_model(mv.model_id).name
        except Exception:
            return None
    source = mv.source or ""
    return source.rstrip("/").rsplit("/", 1)[-1] if source.startswith("runs:/") else None


def runs_tagged(ws: Workspace, token: str) -> list[Any]:
    """The runs a reproducing child recorded (tagged with its request's ``token``)."""
    from mlflow.entities import ViewType

    from lineage_plugin.queries.workspace import pages
    from lineage_plugin.tracking.reproducing import TOKEN_TAG

    store = ws.tracking_store
    experiments = [
        e.experiment_id
        for e in pages(lambda t: store.search_experiments(view_type=ViewType.ALL, page_token=t))
    ]
    return list(
        pages(
            lambda t: store.search_runs(
                experiments, f"tags.`{TOKEN_TAG}` = '{token}'", ViewType.ALL, page_token=t
            )
        )
    )


def find_reproduced(
    ws: Workspace, token: str, original_run: Any, mv: Any, exit_code: int
) -> tuple[Any, str]:
    """The run the reproduction recorded and the URI of the model it logged.

    Several runs (a sweep) are told apart by their params: the one with the original run's
    params wins.

    Raises:
        VerificationError: No run was recorded, it logged no model, or several runs match.
    """
    store = ws.tracking_store
    runs = runs_tagged(ws, token)
    after = f" (the training exited with code {exit_code}; its output is above)"
    if not runs:
        raise VerificationError(
            f"The training recorded no MLflow run{after}, so there is nothing to compare. "
            "Check that it uses the same tracking URI and starts a run."
        )
    wanted = _logged_model_name(ws, mv)
    candidates = []
    for run in runs:
        models = store.search_logged_models(
            [run.info.experiment_id], f"source_run_id = '{run.info.run_id}'"
        )
        named = [m for m in models if wanted is None or m.name == wanted]
        if named:
            candidates.append((run, named[-1].model_uri))
    if not candidates:
        ids = ", ".join(r.info.run_id for r in runs)
        raise VerificationError(
            f"The training recorded run(s) {ids} but logged no model"
            + (f" named '{wanted}'" if wanted else "")
            + f"{after}, so there is nothing to compare."
        )
    if len(candidates) > 1 and original_run is not None:
        params = original_run.data.params
        same = [c for c in candidates if c[0].data.params == params]
        candidates = same or candidates
    if len(candidates) > 1:
        ids = ", ".join(c[0].info.run_id for c in candidates)
        raise VerificationError(
            f"The training recorded several runs with a model ({ids}) and none has exactly "
            "the original run's params. Pass --command to train only the one model."
        )
    return candidates[0]


def load_model(ws: Workspace, model_uri: str) -> Any:
    """Load a pyfunc model (``models:/name/version`` or ``models:/<model id>``) from ``ws``."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils

    before = (mlflow.get_tracking_uri(), registry_utils._registry_uri)
    mlflow.set_tracking_uri(ws.tracking_uri)
    mlflow.set_registry_uri(ws.tracking_uri)
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:
        raise VerificationError(f"Could not load the model {model_uri}: {exc}") from exc
    finally:
        mlflow.set_tracking_uri(before[0])
        registry_utils._registry_uri = before[1]
