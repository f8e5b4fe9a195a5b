"""Environment and code capture: interpreter, library versions, git commit, entry point.

Everything here is computed once per process and cached: it does not change between runs.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys

from lineage_plugin.records import CodeVersion, Environment

#: Distributions whose versions are recorded as readable tags (the full list is an artifact).
TRACKED_PACKAGES: tuple[str, ...] = (
    "mlflow",
    "mlflow-delta-lineage",
    "deltalake",
    "polars",
    "pyarrow",
    "pyspark",
    "delta-spark",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "xgboost",
    "lightgbm",
    "torch",
    "tensorflow",
    "statsmodels",
    "catboost",
)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def _installed() -> dict[str, str]:
    """``{canonical name: version}`` of every installed distribution.

    Read from the ``<name>-<version>.dist-info`` directory names on ``sys.path`` (one directory
    listing per entry; a metadata file is opened only for an ``.egg-info`` without a version
    in its name), which keeps environment capture cheap enough for every run.
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            stem, dot, kind = name.rpartition(".")
            if dot and kind in ("dist-info", "egg-info"):
                dist, _, version = stem.partition("-")
                version = version.split("-")[0] or _pkg_info_version(os.path.join(entry, name))
                if version:
                    found.setdefault(_canonical(dist), version)
    return found


def _pkg_info_version(egg_info: str) -> str | None:
    try:
        with open(os.path.join(egg_info, "PKG-INFO"), encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    return _installed().get(_canonical(dist))


@functools.lru_cache(maxsize=1)
def current_environment() -> Environment:
    """The interpreter, platform and versions of :data:`TRACKED_PACKAGES` that are installed."""
    packages = {name: v for name in TRACKED_PACKAGES if (v := _version(name)) is not None}
    return Environment(
        python=platform.python_version(), platform=platform.platform(), packages=packages
    )


def installed_distributions() -> str:
    """Every installed distribution as ``name==version`` lines, sorted (a run artifact)."""
    return "".join(f"{name}=={version}\n" for name, version in sorted(_installed().items()))


def _git(cwd: str, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


_SECRET_OPTION = re.compile(
    r"^--?[\w.-]*(password|passwd|secret|token|api[-_]?key|credential)", re.I
)
REDACTED = "***"


def redact_argv(argv: list[str]) -> list[str]:
    """``argv`` with the values of secret-looking options (``--password``, ``--api-key``,
    ``--aws-secret=...``) replaced by ``***``: the entry point is recorded, credentials never.
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            out.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        if _SECRET_OPTION.match(arg):
            option, eq, _ = arg.partition("=")
            out.append(f"{option}={REDACTED}" if eq else arg)
            hide_next = not eq
        else:
            out.append(arg)
    return out


def _entry_directory(argv: list[str], cwd: str) -> str:
    script = argv[0] if argv else ""
    if script and os.path.isfile(script):
        return os.path.dirname(os.path.abspath(script))
    return cwd


def git_state(argv: list[str] | tuple[str, ...], cwd: str) -> tuple[str | None, bool | None]:
    """The git commit (and whether uncommitted changes exist) of the code ``argv`` runs.

    Args:
        argv: The command line (its script decides which repository).
        cwd: The working directory it runs in.

    Returns:
        ``(commit, dirty)``; ``(None, None)`` outside a git repository.
    """
    where = _entry_directory(list(argv), cwd)
    commit = _git(where, "rev-parse", "HEAD")
    dirty = None
    if commit:
        status = _git(where, "status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    return commit, dirty


@functools.lru_cache(maxsize=1)
def current_code() -> CodeVersion:
    """The process's entry point (argv, working directory) and the git commit of its code."""
    argv = redact_argv(list(sys.argv))
    cwd = os.getcwd()
    commit, dirty = git_state(argv, cwd)
    return CodeVersion(argv=tuple(argv), cwd=cwd, git_commit=commit, git_dirty=dirty)
