"""Environment and code capture: interpreter, library versions, git commit, entry point.

Everything here is computed once per process and cached: it does not change between runs.
When git does not pin the code (no repository, or uncommitted changes), the entry script and
the local modules it imported from its own folder are hashed (SHA-256), each file once per
process, within :data:`MAX_CODE_FILES` and :data:`MAX_CODE_BYTES`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import platform
import re
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterable

from lineage_plugin import settings
from lineage_plugin.errors import CaptureError, LineageWarning
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
    # A test runner or kernel lives among the libraries: its folder says nothing of the code.
    if script and os.path.isfile(script) and interactive_process(argv) is None:
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
def _entry_point() -> CodeVersion:
    argv = redact_argv(list(sys.argv))
    cwd = os.getcwd()
    commit, dirty = git_state(argv, cwd)
    return CodeVersion(argv=tuple(argv), cwd=cwd, git_commit=commit, git_dirty=dirty)


def current_code() -> CodeVersion:
    """The process's entry point (argv, working directory), the git commit of its code, and,
    when git does not pin it, the SHA-256 of the script and the local modules imported so far.

    Never raises for the hashing (a failure is a warning; ``MLFLOW_LINEAGE_STRICT``: an error).
    """
    entry = _entry_point()
    if entry.git_commit and not entry.git_dirty:
        return entry
    try:
        files = _recorded_files(entry)
    except Exception as exc:  # never break the user's run
        if settings.strict():
            raise CaptureError(f"Could not hash the training code: {exc}") from exc
        warnings.warn(
            f"mlflow-delta-lineage: could not hash the training code ({exc}); check will "
            "report its code as not recorded.",
            LineageWarning,
            stacklevel=2,
        )
        files = {}
    return dataclasses.replace(entry, files=files or None)


#: The most files hashed for one process (the entry script and its local modules).
MAX_CODE_FILES = 100
#: The most bytes hashed for one process; a single file larger than this is skipped.
MAX_CODE_BYTES = 16 * 1024 * 1024
_INTERACTIVE = ("ipykernel", "pytest", "py.test", "jupyter", "ipython")
_LIBRARY_DIRS = frozenset(("site-packages", "dist-packages", "__pycache__", "node_modules"))


def interactive_process(argv: list[str] | tuple[str, ...]) -> str | None:
    """What kind of process ``argv`` is, when it is one that cannot be re-run from its command
    line or hashed as a script: ``python -c``, stdin, a notebook kernel, a test runner.

    Args:
        argv: The recorded command line (``sys.argv``).

    Returns:
        A short description such as ``"a pytest process"``; ``None`` for a script.
    """
    script = argv[0] if argv else ""
    if script == "-c":
        return "a python -c command"
    if script in ("", "-"):
        return "an interactive interpreter"
    name = os.path.basename(script)
    if name in ("__main__.py", "__init__.py"):  # python -m package: the package names it
        name = os.path.basename(os.path.dirname(script))
    found = next((word for word in _INTERACTIVE if word in name.lower()), None)
    return f"a {found} process" if found else None


def entry_script(argv: list[str] | tuple[str, ...], cwd: str | None) -> str | None:
    """The absolute, symlink-free path of the script ``argv`` ran, if it is a file now.

    Args:
        argv: The command line; ``argv[0]`` is the script (relative to ``cwd``).
        cwd: The working directory it ran in.
    """
    if not argv or interactive_process(argv) is not None:
        return None
    script = argv[0]
    path = script if os.path.isabs(script) else os.path.join(cwd or os.getcwd(), script)
    return os.path.realpath(path) if os.path.isfile(path) else None


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes, as hex.

    Raises:
        OSError: The file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_module_files(folder: str, module_files: Iterable[str | None]) -> list[str]:
    """The files among ``module_files`` that are the user's own code under ``folder``.

    Skipped: files outside it, in a virtual environment or installed library inside it
    (``site-packages``, ``dist-packages``, hidden folders such as ``.venv``, the interpreter's
    prefix) and compiled caches.

    Returns:
        Absolute, symlink-free paths, sorted, without duplicates.
    """
    spellings = tuple({os.path.abspath(folder) + os.sep, os.path.realpath(folder) + os.sep})
    folder = os.path.realpath(folder)
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    prefixes = {p for p in prefixes if not _under(folder, p)}  # a script inside the prefix
    found = set()
    for name in module_files:
        # A cheap test first: resolving symlinks of thousands of library modules is not.
        if not name or not (name if os.path.isabs(name) else os.path.abspath(name)).startswith(
            spellings
        ):
            continue
        path = os.path.realpath(name)
        if not _under(path, folder) or any(_under(path, p) for p in prefixes):
            continue
        parts = os.path.relpath(path, folder).split(os.sep)
        if any(p in _LIBRARY_DIRS or p.startswith(".") for p in parts[:-1]):
            continue
        if not path.endswith((".pyc", ".pyo")) and os.path.isfile(path):  # not "<stdin>"
            found.add(path)
    return sorted(found)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def hash_code_files(
    script: str,
    module_files: Iterable[str | None],
    *,
    known: dict[str, str] | None = None,
    max_files: int = MAX_CODE_FILES,
    max_bytes: int = MAX_CODE_BYTES,
) -> tuple[dict[str, str], list[str]]:
    """Hash a script and the local modules beside it.

    Args:
        script: The entry script (absolute path).
        module_files: The ``__file__`` of every imported module (others are filtered out).
        known: Files hashed already (relative path -> hash): kept, and not read again.
        max_files: The most files in the result.
        max_bytes: The most bytes read in all (a file that would go over is skipped).

    Returns:
        ``({relative path: sha256}, [relative paths skipped: unreadable or over a cap])``.
        The script comes first; paths are relative to its folder, with ``/`` separators.
    """
    folder = os.path.dirname(script)
    files = dict(known or {})
    skipped: list[str] = []
    budget = max_bytes
    for path in [script, *local_module_files(folder, module_files)]:
        rel = os.path.relpath(path, folder).replace(os.sep, "/")
        try:
            size = os.path.getsize(path)
            if rel in files:  # hashed by an earlier call: it still counts against the budget
                budget -= size
                continue
            if len(files) >= max_files or size > budget:
                skipped.append(rel)
                continue
            files[rel] = file_sha256(path)
        except OSError:
            if rel not in files:
                skipped.append(rel)
            continue
        budget -= size
    return files, skipped


# The files this process recorded: each hashed once (the content the run started with), and
# the set only grows, so the tag written for it never shrinks between writes.
_hashed: dict[str, str] = {}
_skipped_warned: set[str] = set()
_hash_lock = threading.Lock()
# len(sys.modules) at the last scan (no import since, no new file) and the script's folder.
_scanned: dict[str, object] = {"modules": -1, "folder": None}
# Module files looked at already, and those of them that are local: a scan after an import
# filters only the modules imported since (thousands of library modules are looked at once).
_seen_module_files: set[str | None] = set()
_local_files: set[str] = set()


def _recorded_files(entry: CodeVersion) -> dict[str, str]:
    script = entry_script(entry.argv, entry.cwd)
    if script is None:
        return {}
    with _hash_lock:
        if len(sys.modules) == _scanned["modules"]:
            return dict(_hashed)
        _scanned["modules"] = len(sys.modules)
        folder = os.path.dirname(script)
        if _scanned.get("folder") != folder:  # another entry script: look at every module
            _seen_module_files.clear()
            _local_files.clear()
            _scanned["folder"] = folder
        modules = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
        new_modules = modules - _seen_module_files
        _seen_module_files.update(new_modules)
        _local_files.update(local_module_files(folder, new_modules))
        files, skipped = hash_code_files(script, sorted(_local_files), known=_hashed)
        _hashed.update(files)
        new = [s for s in skipped if s not in _skipped_warned]
        _skipped_warned.update(new)
    if new:
        warnings.warn(
            f"mlflow-delta-lineage: {len(new)} local file(s) were not hashed (unreadable, or "
            f"over {MAX_CODE_FILES} files / {MAX_CODE_BYTES // 2**20} MiB): "
            f"{', '.join(new[:5])}{' ...' if len(new) > 5 else ''}; check cannot see them change.",
            LineageWarning,
            stacklevel=3,
        )
    return dict(_hashed)
