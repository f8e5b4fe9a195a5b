"""Run the demo notebook from the command line, printing each cell's output as it runs.

Executes ``rollback_after_a_bad_write.ipynb`` in a fresh Jupyter kernel (nbclient) in the
notebook's own directory, as Jupyter does, writes the demo's data to ``--workdir`` (default
``./demo_output``), and saves the executed copy there. Exit status 1 when a
cell fails.

Usage:
    python demo_notebooks/run_demo.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

NOTEBOOK = Path(__file__).resolve().parent / "rollback_after_a_bad_write.ipynb"


def _print_title(cell: Any, **_: Any) -> None:
    """Markdown cells are not executed: print their titles as the run reaches them."""
    if cell.cell_type == "markdown":
        title = next((line for line in cell.source.splitlines() if line.startswith("#")), "")
        if title:
            print(f"\n{title.lstrip('# ')}\n{'=' * len(title.lstrip('# '))}", flush=True)


def _print_outputs(cell: Any, **_: Any) -> None:
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            print(output.text, end="", flush=True)
        elif output.output_type in ("execute_result", "display_data"):
            print(output.get("data", {}).get("text/plain", ""), flush=True)
        elif output.output_type == "error":
            print("\n".join(output.traceback), file=sys.stderr, flush=True)


def main() -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="demo_output", type=Path)
    args = parser.parse_args()
    os.environ["DEMO_WORKDIR"] = str(args.workdir.resolve())  # the kernel inherits it
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
        on_cell_start=_print_title,
        on_cell_executed=_print_outputs,
    )
    try:
        client.execute()
    except CellExecutionError:
        return 1
    finally:
        executed = args.workdir / NOTEBOOK.name
        if args.workdir.is_dir():
            nbformat.write(notebook, executed)
    print(f"\nExecuted notebook saved to {executed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
