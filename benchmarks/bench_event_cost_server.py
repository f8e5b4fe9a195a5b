"""Cost of recording registry events behind a real tracking server.

Two ``mlflow server`` processes on fresh SQLite databases: one with ``--backend-store-uri
sqlite:///...`` (stock), one with ``lineage+sqlite:///...`` (the plugin records every event in
the server). The same stock ``MlflowClient`` calls go to both, interleaved in chunks of 20:
moving an alias, deleting it, and a transition to Production with
``archive_existing_versions``. Each call targets a fresh version, as in a registry where a
version changes stage or alias a few times in its life. Prints median ms, the plugin/stock ratio
(target <= 1.3) and checks that the plugin server really recorded the events.

    python benchmarks/bench_event_cost_server.py            # 200 calls of each kind
    python benchmarks/bench_event_cost_server.py --quick    # 40
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

TARGET = 1.3
ROOT = Path(__file__).resolve().parents[1]


def _calls(client, version: int) -> dict[str, object]:
    v = str(version)
    return {
        "set_registered_model_alias (move champion)": lambda: client.set_registered_model_alias(
            "m", "champion", v
        ),
        "delete_registered_model_alias": lambda: client.delete_registered_model_alias(
            "m", "champion"
        ),
        "transition (Production, archive_existing)": lambda: client.transition_model_version_stage(
            "m", v, "Production", True
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 calls of each kind")
    args = parser.parse_args()
    import common as C

    C.clean_this_process_env()
    sys.path.insert(0, str(ROOT / "tests"))
    from mlflow import MlflowClient
    from server import mlflow_server

    warnings.simplefilter("ignore", FutureWarning)  # stages are deprecated, still used
    n = 40 if args.quick else 200
    with tempfile.TemporaryDirectory(prefix="event-servers-") as tmp:
        dirs = {k: Path(tmp) / k for k in ("stock", "plugin")}
        for d in dirs.values():
            d.mkdir()
        with (
            mlflow_server(f"sqlite:///{dirs['stock'] / 'mlflow.db'}", dirs["stock"]) as stock,
            mlflow_server(
                f"lineage+sqlite:///{dirs['plugin'] / 'mlflow.db'}", dirs["plugin"]
            ) as lin,
        ):
            clients = {"stock": MlflowClient(stock, stock), "plugin": MlflowClient(lin, lin)}
            for client in clients.values():
                client.create_registered_model("m")
                for _ in range(n + 1):
                    client.create_model_version("m", "s3://bucket/model")
            times: dict[str, dict[str, list[float]]] = {k: {} for k in clients}
            for chunk in range(1, n + 1, 20):
                for kind, client in clients.items():
                    for version in range(chunk, min(chunk + 20, n + 1)):
                        for call, fn in _calls(client, version).items():
                            start = time.perf_counter()
                            fn()
                            times[kind].setdefault(call, []).append(time.perf_counter() - start)
            versions = clients["plugin"].search_model_versions("name='m'", max_results=n + 1)
            events = sum(k.startswith("lineage.event.") for v in versions for k in v.tags)
            stock_versions = clients["stock"].search_model_versions("name='m'", max_results=n + 1)
            stock_events = sum(k.startswith("lineage.") for v in stock_versions for k in v.tags)
    # per version: alias set + alias deleted + transition (+ the archived previous holder)
    expected = 3 * n + (n - 1)
    if events != expected or stock_events:
        print(f"error: the plugin server recorded {events} events, expected {expected}")
        return 1
    print(f"{n} calls of each kind through a real mlflow server (plain MlflowClient), median ms:")
    rows = []
    worst = 0.0
    for call in times["stock"]:
        a = statistics.median(times["stock"][call]) * 1000
        b = statistics.median(times["plugin"][call]) * 1000
        worst = max(worst, b / a)
        rows.append([call, f"{a:.2f}", f"{b:.2f}", f"{b - a:.2f}", f"{b / a:.2f}"])
    C.print_table(["call", "stock ms", "plugin ms", "added ms", "plugin/stock"], rows)
    verdict = C.verdict(worst <= TARGET)
    print(f"checked: {events} lineage.event.* tags on the plugin server, none on the stock one")
    print(f"server: worst plugin/stock ratio {worst:.2f} (target <= {TARGET}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
