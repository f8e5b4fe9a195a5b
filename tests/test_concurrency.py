"""Concurrency (issue 16): eight processes train, register and move aliases through one
``mlflow server --backend-store-uri lineage+<db> --workers 2`` while a ninth appends to,
restores and vacuums the tables they read; on SQLite, PostgreSQL (and MySQL).

Half the trainers are plugin clients (``lineage+http://``, sharing one client index, as the
processes of one user on one machine do); half are stock clients (``http://``) with
``lp.autolog()``, whose registry changes the server's ``lineage+`` store records. The processes
are ``tests/concurrent_worker.py``. Afterwards: every run's recorded versions are the versions
it read (its table versions and the rows it got); every registry change has exactly one event,
in MLflow and in the index; the counts add up; the index is what ``reindex`` builds; and after a
last ``mlflow-lineage vacuum --retention-hours 0`` every protected version is still readable.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from concurrent_worker import TABLES, append
from deltalake import DeltaTable
from helpers import child_env, indexed_events, read_pandas, tracking_at
from mlflow import MlflowClient
from postgres import on_backends
from server import mlflow_server
from test_lifecycle import assert_index_is_what_reindex_builds
from test_postgres_server import events_in_mlflow

import lineage_plugin as lp
from lineage_plugin.delta.log import normalize_uri
from lineage_plugin.store.index import index_url

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]

WORKERS = 8
ITERATIONS = 3
SCRIPT = Path(__file__).with_name("concurrent_worker.py")


def start(workdir: Path, name: str, *args: str, **env: str) -> subprocess.Popen:
    with (workdir / f"{name}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(**env),
        )


def finished(workdir: Path, name: str, proc: subprocess.Popen, timeout: float) -> None:
    code = proc.wait(timeout=timeout)
    log = (workdir / f"{name}.log").read_text()
    assert code == 0, f"{name} exited {code}:\n{log[-4000:]}"
    assert "could not" not in log, f"{name} lost lineage:\n{log[-4000:]}"


def cli_vacuums(workdir: Path, uri: str) -> dict[str, dict[str, Any]]:
    """The real ``mlflow-lineage vacuum TABLE --retention-hours 0 --yes --json``, on each
    table at once."""
    main = "from lineage_plugin.cli import main; main()"
    procs = {
        t: subprocess.Popen(
            [
                sys.executable,
                "-c",
                main,
                "vacuum",
                str(workdir / "tables" / t),
                "--retention-hours",
                "0",
                "--yes",
                "--json",
                "--tracking-uri",
                uri,
            ],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )  # fmt: skip
        for t in TABLES
    }
    reports = {}
    for t, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        reports[t] = json.loads(out)
    return reports


def wait_until_ready(workdir: Path, names: list[str], procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 180
    while not all((workdir / f"ready-{n}").exists() for n in names):
        for name, proc in zip(names, procs, strict=True):
            if proc.poll() is not None:
                finished(workdir, name, proc, timeout=0)
        assert time.monotonic() < deadline, "the processes did not get ready in 180 s"
        time.sleep(0.1)


def run_everything(backend_uri: str, workdir: Path) -> dict[str, Any]:
    """Tables, a server, 8 trainers and a maintainer; what each did, and how long it took."""
    (workdir / "out").mkdir()
    for batch in range(2 * len(TABLES)):
        append(str(workdir / "tables" / TABLES[batch % len(TABLES)]), batch)
    home = str(workdir / "client-home")
    clock = [time.monotonic()]
    with mlflow_server(f"lineage+{backend_uri}", workdir, workers=2) as url:
        clock.append(time.monotonic())
        experiment = MlflowClient(url).create_experiment("concurrency")
        env = {"MLFLOW_EXPERIMENT_ID": experiment, "MLFLOW_LINEAGE_HOME": home}
        uris = [f"lineage+{url}" if n % 2 == 0 else url for n in range(WORKERS)]
        names = [*(f"train-{n}" for n in range(WORKERS)), "maintain"]
        procs = [
            *(start(workdir, names[n], "train", uris[n], str(n), str(ITERATIONS), str(workdir),
                    **env) for n in range(WORKERS)),
            start(workdir, "maintain", "maintain", f"lineage+{url}", str(workdir), **env),
        ]  # fmt: skip
        wait_until_ready(workdir, names, procs)
        clock.append(time.monotonic())
        (workdir / "go").touch()
        try:
            for name, proc in zip(names[:-1], procs[:-1], strict=True):
                finished(workdir, name, proc, timeout=300)
        finally:
            (workdir / "stop").touch()
            finished(workdir, "maintain", procs[-1], timeout=300)
        clock.append(time.monotonic())
        final = cli_vacuums(workdir, url)
        [server_log] = workdir.glob("server-*.log")
        assert "mlflow-delta-lineage could not" not in server_log.read_text()
        maintained = json.loads((workdir / "maintain.json").read_text())
        done = {
            "url": url, "experiment": experiment, "home": home, "workdir": workdir,
            "maintained": maintained, "final": final,
            "lines": [json.loads(line) for n in range(WORKERS)
                      for line in (workdir / "out" / f"train-{n}.jsonl").read_text().splitlines()],
            "content": {t: {int(v): b for v, b in c.items()}
                        for t, c in maintained["content"].items()},
        }  # fmt: skip
        checks(backend_uri, done)
        clock.append(time.monotonic())
    done["phases"] = [round(b - a, 1) for a, b in zip(clock, clock[1:], strict=False)]
    return done


def checks(backend_uri: str, done: dict[str, Any]) -> None:
    check_runs(done)
    check_registrations(done)
    check_events(backend_uri, done)
    check_protected_versions(done)


def check_runs(done: dict[str, Any]) -> None:
    """Each run's record is what it read: the versions it loaded, holding the rows it got."""
    lines, content = done["lines"], done["content"]
    assert len(lines) == WORKERS * ITERATIONS
    runs = MlflowClient(done["url"]).search_runs([done["experiment"]], max_results=1000)
    assert sorted(r.info.run_id for r in runs) == sorted(line["run_id"] for line in lines)
    with tracking_at(done["url"]):
        for line in lines:
            lineage = lp.get_run_lineage(line["run_id"])
            assert lineage.status == "complete", line
            read = sorted((normalize_uri(r["table"]), r["version"]) for r in line["reads"])
            assert sorted((i.uri, i.version) for i in lineage.inputs) == read, line
            for r in line["reads"]:
                assert r["batches"] == content[Path(r["table"]).name][r["version"]], line


def check_registrations(done: dict[str, Any]) -> None:
    """No registration lost or doubled; each version carries its run's tables."""
    lines = done["lines"]
    shared = sorted(int(v) for line in lines for m, v in line["registered"] if m == "shared")
    assert shared == list(range(1, WORKERS * ITERATIONS + 1))
    with tracking_at(done["url"]):
        for line in lines:
            own = [v for m, v in line["registered"] if m != "shared"]
            assert [int(v) for v in own] == [line["iteration"] + 1]
            read = sorted((normalize_uri(r["table"]), r["version"]) for r in line["reads"])
            for name, version in line["registered"]:
                lineage = lp.get_lineage(name, version)
                assert lineage.run.run_id == line["run_id"]
                assert sorted((i.uri, i.version) for i in lineage.inputs) == read


def check_events(backend_uri: str, done: dict[str, Any]) -> None:
    """Every registry change and every restore is one event, in MLflow and in the index."""
    client = MlflowClient(done["url"], done["url"])
    models = ["shared", *(f"model-{n}" for n in range(WORKERS))]
    made = Counter(tuple(c) for line in done["lines"] for c in line["changes"])
    restores = done["maintained"]["restores"]
    recorded: Counter = Counter()
    restore_events = []
    every_id: list[str] = []
    for name in models:
        events = events_in_mlflow(client, name)
        every_id += [e.event_id for e in events]
        indexed = indexed_events(index_url(f"lineage+{backend_uri}"), name)
        assert [e.event_id for e in indexed] == [e.event_id for e in events], name
        for e in events:
            if e.kind == "restore":
                restore_events.append((e.event_id, e.version))
            else:
                recorded[(e.kind, name, e.alias or e.stage, e.version)] += 1
    assert len(every_id) == len(set(every_id))  # no event twice
    assert recorded == made  # each change once, none invented
    assert sum(made.values()) == WORKERS * ITERATIONS * 4
    assert sorted(restore_events) == sorted((r["event_id"], r["version"]) for r in restores)
    assert len(restores) >= 1, "the maintainer never restored: the test did not test restores"
    assert_index_is_what_reindex_builds(f"lineage+{backend_uri}")


def check_protected_versions(done: dict[str, Any]) -> None:
    """After the last vacuum (retention 0) every version a model in use needs is readable, with
    the rows it had; the vacuums did delete files."""
    client = MlflowClient(done["url"], done["url"])
    holders = {("shared", "champion"), *((f"model-{n}", "champion") for n in range(WORKERS))}
    holders |= {("shared", f"w{n}") for n in range(WORKERS)}
    needed = set()
    with tracking_at(done["url"]):
        for name, alias in holders:
            version = client.get_model_version_by_alias(name, alias).version
            needed |= {(Path(i.uri).name, i.version) for i in lp.get_lineage(name, version).inputs}
    deleted = sum(done["maintained"]["vacuums"])
    for t, report in done["final"].items():
        kept = {k["version"] for k in report["kept"]}
        assert {v for name, v in needed if name == t} <= kept, t
        deleted += report["deleted"]
    assert deleted > 0
    for t, report in done["final"].items():
        for version in {k["version"] for k in report["kept"]}:
            table = DeltaTable(str(done["workdir"] / "tables" / t), version=version)
            rows = read_pandas(table)
            assert sorted({int(b) for b in rows["batch"]}) == done["content"][t][version]


@on_backends("sqlite", "postgresql", "mysql+pymysql")
def test_eight_trainers_and_a_maintainer_through_one_server(backend_uri, tmp_path, capsys):
    done = run_everything(backend_uri, tmp_path)
    with capsys.disabled():
        m = done["maintained"]
        print(
            f"\n[{backend_uri.split(':', 1)[0]}] {WORKERS}x{ITERATIONS} runs, "
            f"{m['rounds']} maintenance rounds, {len(m['restores'])} restores, "
            f"{sum(m['vacuums'])} files vacuumed in the loop, "
            f"{sum(line['alias_retries'] for line in done['lines'])} alias retries, "
            f"{max(line['unprotected_seconds'] for line in done['lines'])} s longest read to "
            "registration; seconds "
            f"(server start, imports, concurrent work, checks): {done['phases']}"
        )
