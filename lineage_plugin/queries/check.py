"""``check MODEL VERSION``: would retraining now reproduce this model version?"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from lineage_plugin.errors import LineageError
from lineage_plugin.queries.at_risk import WITHIN_HOURS, risks_of
from lineage_plugin.queries.show import resolve
from lineage_plugin.queries.times import json_output
from lineage_plugin.queries.workspace import Workspace
from lineage_plugin.records import CodeVersion, DeltaInput, ModelVersionLineage, drop_nulls


@dataclass(frozen=True, kw_only=True)
class CheckReport:
    """What stands between a model version and an exact retraining.

    Attributes:
        name: Registered model name.
        version: Model version.
        problems: ``{"kind": "data" | "environment" | "code" | "lineage", "message": ...}``
            (``data`` ones also name the table version: ``uri``, ``version``).
        tables_checked: How many recorded table versions were checked.
        packages_checked: How many recorded library versions were compared.
        risks: When a plain VACUUM or log clean-up, with the tables' settings, can make a
            recorded version unreadable (``uri``, ``version``, ``kind``, ``at``, ``due``,
            ``detail``); the ``due`` ones are ``retention`` problems too.
    """

    name: str
    version: str
    problems: tuple[dict[str, Any], ...]
    tables_checked: int
    packages_checked: int
    risks: tuple[dict[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing stands in the way."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON of ``check --json``."""
        return drop_nulls(
            {
                "name": self.name,
                "version": self.version,
                "ok": self.ok,
                "problems": list(self.problems),
                "tables_checked": self.tables_checked,
                "packages_checked": self.packages_checked,
                "risks": json_output(list(self.risks)),
            }
        )


def check(
    name: str,
    version: str | int,
    *,
    within_hours: float = WITHIN_HOURS,
    tracking_uri: str | None = None,
) -> CheckReport:
    """Compare today's environment, code and tables with what a model version recorded.

    Args:
        name: Registered model name.
        version: A version number, alias or stage.
        within_hours: A recorded table version that a plain VACUUM or log clean-up can make
            unreadable within this many hours is a problem (every such risk is listed).
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        A :class:`CheckReport`; ``ok`` is False when retraining would not see the same
        inputs (a table version no longer readable, a library version changed, other code:
        another git commit, or an entry script or local module whose SHA-256 changed or that
        is missing), cannot tell (no code recorded: neither a git commit nor file hashes), or
        a recorded table version is at risk within ``within_hours``.

    Raises:
        LineageError: Unknown model or version, or a negative ``within_hours``.

    Example:
        >>> report = check("diabetes", 1)
        >>> report.ok, [p["message"] for p in report.problems]
    """
    from lineage_plugin import tags as T

    if within_hours < 0:
        raise LineageError(f"--within must be 0 or more, not {within_hours:g} hours.")
    ws = Workspace(tracking_uri)
    number = resolve(ws, name, str(version))
    lineage = T.model_version_lineage(ws.model_version(name, number))
    problems: list[dict[str, str]] = []
    if lineage.run is None or not lineage.inputs:
        problems.append(
            {
                "kind": "lineage",
                "message": f"Version {number} has no recorded Delta inputs (status "
                f"{lineage.status}), so its training data cannot be checked.",
            }
        )
    problems.extend(_data_problems(lineage.inputs))
    risks = _risks(lineage.inputs, problems, within_hours)
    compared = _environment_problems(lineage, problems)
    problems.extend(_code_problems(lineage))
    return CheckReport(
        name=name,
        version=number,
        problems=tuple(problems),
        tables_checked=len(lineage.inputs),
        packages_checked=compared,
        risks=tuple(risks),
    )


def _risks(
    inputs: tuple[DeltaInput, ...], problems: list[dict[str, Any]], within_hours: float
) -> list[dict[str, Any]]:
    """The retention risks of the readable recorded versions; the due ones become problems."""
    from lineage_plugin.queries.times import format_time

    unreadable = {(p["uri"], p["version"]) for p in problems if p["kind"] == "data"}
    wanted: dict[str, set[int]] = {}
    labels: dict[str, str] = {}
    for inp in inputs:
        if (inp.uri, inp.version) not in unreadable:
            wanted.setdefault(inp.uri, set()).add(inp.version)
            labels[inp.uri] = inp.name or inp.uri
    now = int(time.time() * 1000)
    risks = []
    for uri, found in risks_of(wanted, now_ms=now, within_hours=within_hours).items():
        for risk in found.get("risks", ()):
            risks.append({"uri": uri, **risk})
            if risk["due"]:
                problems.append(
                    {
                        "kind": "retention",
                        "message": f"{labels[uri]}@v{risk['version']}: {risk['detail']}, from "
                        f"{format_time(risk['at'])}. Raise the table property it names, and "
                        "vacuum with mlflow-lineage vacuum.",
                        "uri": uri,
                        "version": risk["version"],
                    }
                )
    return risks


def _data_problems(inputs: tuple[DeltaInput, ...]) -> list[dict[str, str]]:
    from lineage_plugin.delta.readability import check_version_readable

    problems = []
    seen: set[tuple[str, int]] = set()
    for inp in inputs:
        if (inp.uri, inp.version) in seen:
            continue
        seen.add((inp.uri, inp.version))
        reasons = check_version_readable(inp.uri, inp.version, table_id=inp.table_id)
        spark_says = _through_spark(inp) if reasons else None
        if spark_says is not None:  # Spark reaches what deltalake could not: its word counts
            reasons = spark_says
        problems += [
            {"kind": "data", "message": f"{inp.label}: {r}", "uri": inp.uri, "version": inp.version}
            for r in reasons
        ]
    return problems


def _through_spark(inp: DeltaInput) -> list[str] | None:
    """What the active Spark session says of a remote table ``deltalake`` could not read (a
    table only the cluster reaches); ``None`` when there is no session or it cannot read it
    either."""
    from lineage_plugin.delta.log import local_path
    from lineage_plugin.delta.spark import active_session, recorded_state

    if local_path(inp.uri) is not None or active_session() is None:
        return None
    state = recorded_state(inp)
    return list(state.refusals) if state.current_version is not None else None


def _environment_problems(lineage: ModelVersionLineage, problems: list[dict[str, str]]) -> int:
    from lineage_plugin.tracking.environment import current_environment

    recorded = lineage.run.environment if lineage.run else None
    if recorded is None:
        problems.append(
            {"kind": "environment", "message": "No environment was recorded for this version."}
        )
        return 0
    now = current_environment()
    if recorded.python != now.python:
        problems.append(
            {
                "kind": "environment",
                "message": f"python: recorded {recorded.python}, now {now.python}",
            }
        )
    for package, version in sorted(recorded.packages.items()):
        current = now.packages.get(package)
        if current != version:
            problems.append(
                {
                    "kind": "environment",
                    "message": f"{package}: recorded {version}, now {current or 'not installed'}",
                }
            )
    return len(recorded.packages)


def _code_problems(lineage: ModelVersionLineage) -> list[dict[str, str]]:
    from lineage_plugin.tracking.environment import interactive_process

    code = lineage.run.code if lineage.run else None
    if code is None:
        return [_code("code not recorded: the run recorded no entry point or code version")]
    script = code.argv[0] if code.argv else "stdin"
    what = interactive_process(code.argv)
    problems = []
    if what:  # a git commit it recorded is its working directory's, not the code's it ran
        problems.append(
            _code(
                f"code not recorded: it was trained in {what} ({script}), whose code can be "
                "neither hashed nor re-run; train from a script to make it checkable (reproduce "
                "needs --command)"
            )
        )
    elif not code.git_commit and not code.files:
        return [
            _code(
                f"code not recorded: {script} was not in a git repository and no file hashes "
                "were recorded (a run recorded before code hashing, or its script was not found)"
            )
        ]
    if code.cwd and not os.path.isdir(code.cwd):
        return [*problems, _code(f"The working directory {code.cwd} is gone.")]
    if code.git_commit:
        problems += _git_problems(code)
    return problems + _file_problems(code)


def _code(message: str) -> dict[str, str]:
    return {"kind": "code", "message": message}


def _git_problems(code: CodeVersion) -> list[dict[str, str]]:
    from lineage_plugin.tracking.environment import git_state

    commit, dirty = git_state(code.argv, code.cwd or os.getcwd())
    problems = []
    if commit != code.git_commit:
        problems.append(
            _code(
                f"code: recorded git commit {code.git_commit}, now {commit or 'none'}"
                " (check out the recorded commit before retraining)"
            )
        )
    if dirty:
        problems.append(_code("code: the repository has uncommitted changes now"))
    if code.git_dirty:
        problems.append(
            _code(
                "code: the recorded run had uncommitted changes; its exact code is not in git"
                + (", only the hashes of its script and local modules" if code.files else "")
            )
        )
    return problems


def _file_problems(code: CodeVersion) -> list[dict[str, str]]:
    """Each recorded file (entry script, local module) that changed or is gone since the run."""
    from lineage_plugin.tracking.environment import file_sha256

    script = code.argv[0] if code.argv else ""
    path = script if os.path.isabs(script) else os.path.join(code.cwd or os.getcwd(), script)
    folder = os.path.dirname(os.path.realpath(path))
    problems = []
    for rel, recorded in sorted((code.files or {}).items()):
        where = os.path.join(folder, *rel.split("/"))
        try:
            now = file_sha256(where)
        except FileNotFoundError:
            problems.append(
                _code(
                    f"code: {rel} is missing (looked at {where}, recorded sha256 {recorded[:12]})"
                )
            )
            continue
        except OSError as exc:
            problems.append(_code(f"code: {rel} cannot be read to compare it ({exc})"))
            continue
        if now != recorded:
            problems.append(
                _code(f"code: {rel} changed since the run (sha256 {recorded[:12]} -> {now[:12]})")
            )
    return problems
