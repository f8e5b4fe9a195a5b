"""Smoke-test the built wheel in a fresh virtual environment, away from the source tree.

Installs the wheel with its ``demo`` extra from PyPI into a new venv in a temporary directory,
then, from a temporary working directory and with the source tree not on ``sys.path``:
imports every name in ``lineage_plugin.__all__``, runs ``--help`` of ``mlflow-lineage`` and of
every command of its click group (found from the group, so new commands are covered), loads
the ``mlflow.app`` entry points, serves a few UI requests from the installed
``lineage_plugin.ui`` (its templates and static files), and runs the demo notebook end to end
(``demo_notebooks/run_demo.py``, data in the temporary directory). Also checks that every file
of ``ui_extension/`` in the source tree is in the wheel under ``lineage_plugin/ui/``.

Usage:
    python .ci/wheel_smoke.py DIST_DIR   (the directory ``python -m build`` wrote to)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click

SOURCE = Path(__file__).resolve().parents[1]
DEMO = SOURCE / "demo_notebooks" / "run_demo.py"
UI_SOURCE = SOURCE / "ui_extension"


def fail(message: str) -> None:
    """Print the failure and exit with status 1."""
    print(f"wheel smoke: FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    """Run a command; its stdout, or fail with its output."""
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"{what} (exit {result.returncode}):\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    return result.stdout


def check_ui_files(wheel: Path) -> int:
    """Every file of ui_extension/ must be in the wheel under lineage_plugin/ui/; how many."""
    if not UI_SOURCE.is_dir():
        return 0
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = [
        "lineage_plugin/ui/" + path.relative_to(UI_SOURCE).as_posix()
        for path in UI_SOURCE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]
    missing = sorted(name for name in expected if name not in names)
    if missing:
        fail(
            "the wheel lacks ui_extension/ files (see the lineage_plugin.ui comment in "
            "pyproject.toml):\n  " + "\n  ".join(missing)
        )
    return len(expected)


def tree_state() -> str | None:
    """The source tree's git status, ignored files included (None outside a git checkout)."""
    if shutil.which("git") is None:
        return None
    result = subprocess.run(
        ["git", "-C", str(SOURCE), "status", "--porcelain", "--ignored", "--untracked=all"],
        capture_output=True,
        text=True,
    )
    return result.stdout if result.returncode == 0 else None


def outside(dist: Path) -> None:
    """Make the venv in a temporary directory, run the checks and the demo; remove it."""
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        fail(f"expected one wheel in {dist}, found {[w.name for w in wheels]}")
    ui_files = check_ui_files(wheels[0])
    ui = f"all {ui_files} files of ui_extension/" if ui_files else "no ui_extension/ to check"
    print(f"wheel smoke: {wheels[0].name}: {ui}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="wheel-smoke-"))
    try:
        smoke(wheels[0], tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def smoke(wheel: Path, tmp: Path) -> None:
    """Install the wheel into a venv in tmp; the checks in it, then the demo."""
    venv, work = tmp / "venv", tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    python = str(venv / "bin" / "python")

    started = time.monotonic()
    run([sys.executable, "-m", "venv", str(venv)], work, env, "creating the venv")
    run(
        [python, "-m", "pip", "install", "--quiet", f"{wheel}[demo]"],
        work,
        env,
        f"installing {wheel.name}[demo]",
    )
    installed = time.monotonic()
    print(f"wheel smoke: installed {wheel.name}[demo] in {installed - started:.0f}s", flush=True)

    # -I: neither the working directory nor this script's directory nor PYTHONPATH on sys.path.
    report = json.loads(run([python, "-I", __file__, "--inside"], work, env, "checks in the venv"))
    checked = time.monotonic()
    print(
        f"wheel smoke: lineage_plugin from {report['location']}\n"
        f"wheel smoke: {report['names']} names of lineage_plugin.__all__ imported, "
        f"{report['helps']} --help runs OK (mlflow-lineage and {report['helps'] - 1} commands), "
        f"{report['ui_pages']} UI requests OK in {checked - installed:.0f}s",
        flush=True,
    )

    before = tree_state()
    demo_dir = tmp / "demo"
    demo = subprocess.run(
        [python, str(DEMO), "--workdir", str(demo_dir)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    if demo.returncode != 0:
        fail(f"the demo (exit {demo.returncode}):\n{demo.stdout[-4000:]}{demo.stderr[-4000:]}")
    if "Predictions IDENTICAL" not in demo.stdout:
        fail(f"the demo did not verify the rollback:\n{demo.stdout[-4000:]}")
    if not (demo_dir / "rollback_after_a_bad_write.ipynb").is_file():
        fail(f"the demo saved no executed notebook in {demo_dir}")
    after = tree_state()
    if before != after:
        fail(f"the demo changed the source tree:\nbefore:\n{before}\nafter:\n{after}")
    done = time.monotonic()
    unchanged = "" if before is None else ", source tree unchanged"
    print(
        f"wheel smoke: demo OK in {done - checked:.0f}s{unchanged}; total {done - started:.0f}s",
        flush=True,
    )


def check_ui_app() -> int:
    """The installed ``mlflow.app`` entry points load, and the installed UI serves its files
    and renders a page (its templates and static files came with the wheel); how many routes."""
    from importlib import import_module
    from importlib.metadata import entry_points

    apps = {e.name: e.value for e in entry_points(group="mlflow.app")}
    for name in ("lineage", "lineage-basic-auth"):
        assert name in apps, f"no mlflow.app entry point {name!r}: {sorted(apps)}"
        module, attr = apps[name].split(":")
        assert callable(getattr(import_module(module), attr)), apps[name]
    store = Path(tempfile.mkdtemp(prefix="wheel-smoke-ui-")) / "mlflow.db"
    os.environ["_MLFLOW_SERVER_FILE_STORE"] = f"lineage+sqlite:///{store}"
    from lineage_plugin.ui.app import install
    from mlflow.server import app

    client = install(app).test_client()
    checks = {
        "/lineage/static/lineage.css": (200, "--header"),
        "/lineage/static/lineage.js": (200, "use strict"),
        "/lineage/models": (200, "Registered models"),
        "/lineage/models/nothing-here": (404, "no registered model"),
    }
    for path, (status, text) in checks.items():
        response = client.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == status and text.lower() in body.lower(), (
            f"GET {path}: {response.status_code}\n{body[:2000]}"
        )
    return len(checks)


def command_paths(group: click.Group, ctx: click.Context, prefix: list[str]) -> list[list[str]]:
    """Every command under a click group, nested groups' commands included."""
    import click

    paths = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        paths.append([*prefix, name])
        if isinstance(command, click.Group):
            child = click.Context(command, info_name=name, parent=ctx)
            paths += command_paths(command, child, [*prefix, name])
    return paths


def inside() -> None:
    """In the venv: imports, every --help, the notebook kernel; prints a JSON report."""
    import sysconfig

    import click

    import lineage_plugin
    from lineage_plugin.cli import cli

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert sys.prefix != sys.base_prefix, f"not in a venv: {sys.prefix}"
    location = Path(lineage_plugin.__file__).resolve()
    assert location.is_relative_to(site), f"lineage_plugin from {location}, not {site}"
    assert (location.parent / "py.typed").is_file(), "py.typed is not installed"

    for name in lineage_plugin.__all__:
        getattr(lineage_plugin, name)
    for module in [m for m in sys.modules.values() if m.__name__.startswith("lineage_plugin")]:
        file = Path(module.__file__ or "").resolve()
        assert file.is_relative_to(site), f"{module.__name__} from {file}"

    script = Path(sys.executable).parent / "mlflow-lineage"
    paths = [[], *command_paths(cli, click.Context(cli, info_name="mlflow-lineage"), [])]
    for path in paths:
        result = subprocess.run([str(script), *path, "--help"], capture_output=True, text=True)
        usage = " ".join(["Usage: mlflow-lineage", *path])
        assert result.returncode == 0 and usage in result.stdout, (
            f"mlflow-lineage {' '.join(path)} --help (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )

    ui_pages = check_ui_app()

    # The demo's kernel must run this venv's Python ("python" in a kernelspec means the
    # launching interpreter, the venv's).
    from jupyter_client.kernelspec import KernelSpecManager

    kernel = KernelSpecManager().get_kernel_spec("python3").argv[0]
    major, minor = sys.version_info[:2]
    launcher = {"python", f"python{major}", f"python{major}.{minor}"}
    assert kernel in launcher or Path(kernel).is_relative_to(sys.prefix), (
        f"the python3 kernel runs {kernel}, not this venv's Python"
    )

    report = {
        "location": str(location),
        "names": len(lineage_plugin.__all__),
        "helps": len(paths),
        "ui_pages": ui_pages,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    if sys.argv[1:] == ["--inside"]:
        inside()
    elif len(sys.argv) == 2:
        outside(Path(sys.argv[1]).resolve())
    else:
        sys.exit(__doc__)
