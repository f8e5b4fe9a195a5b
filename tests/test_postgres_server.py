"""A real ``mlflow server --backend-store-uri lineage+postgresql://`` (two worker processes)
serving several client processes at once: no lineage is lost or mixed up, in MLflow (the
record) or in the lineage index (in the same PostgreSQL database), before and after reindex.

Half the clients run the plugin (``lineage+http://``), half are stock (``http://``). Each runs
the rounds of ``registry_client.py``: a Delta version of its own table, a run that logs it,
a version of its own model and of the model ``shared`` every client registers in, alias moves.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import indexed_events, run_python, tracking_at
from mlflow import MlflowClient
from registry_client import ROUNDS
from server import mlflow_server

import lineage_plugin as lp
from lineage_plugin.delta.log import normalize_uri
from lineage_plugin.events import EVENT_PREFIX, RegistryEvent

pytestmark = pytest.mark.slow

CLIENTS = 4
CLIENT_SCRIPT = Path(__file__).with_name("registry_client.py")


@pytest.fixture(scope="module")
def served(postgres, tmp_path_factory):
    """The server on a database of its own, and what each client process did."""
    root = tmp_path_factory.mktemp("postgres-server")
    with (
        postgres.database() as db,
        mlflow_server(f"lineage+{db}", root, workers=2) as url,
        ThreadPoolExecutor(CLIENTS) as pool,
    ):
        uris = [f"lineage+{url}" if n % 2 == 0 else url for n in range(CLIENTS)]
        runs = [
            pool.submit(
                run_python,
                str(CLIENT_SCRIPT),
                uris[n],
                str(n),
                str(root),
                str(CLIENTS),
                cwd=root,
                MLFLOW_LINEAGE_HOME=str(root / f"home-{n}"),
            )  # fmt: skip
            for n in range(CLIENTS)
        ]
        done = [r.result() for r in runs]
        for n, result in enumerate(done):
            assert result.returncode == 0, f"client {n}:\n{result.stderr[-4000:]}"
            assert "could not record" not in result.stderr, result.stderr[-4000:]
        clients = [json.loads(r.stdout.strip().splitlines()[-1]) for r in done]
        [log] = root.glob("server-*.log")
        yield {"url": url, "index": db, "lineage_uri": f"lineage+{db}", "clients": clients,
               "log": log}  # fmt: skip


def test_the_server_recorded_everything_without_a_warning(served):
    assert "mlflow-delta-lineage could not" not in served["log"].read_text()


def table_inputs(lineage) -> list[tuple[str, int]]:
    return [(i.uri, i.version) for i in lineage.inputs]


def events_in_mlflow(client: MlflowClient, name: str) -> list[RegistryEvent]:
    """Every event tag on every version of ``name``, by event id."""
    return sorted(
        (
            RegistryEvent.from_json(value)
            for mv in client.search_model_versions(f"name='{name}'")
            for key, value in mv.tags.items()
            if key.startswith(EVENT_PREFIX)
        ),
        key=lambda e: e.event_id,
    )


def test_every_run_has_exactly_its_own_lineage(served):
    with tracking_at(served["url"]):
        for c in served["clients"]:
            for round_, r in enumerate(c["rounds"]):
                lineage = lp.get_run_lineage(r["run_id"])
                assert lineage.status == "complete"
                assert table_inputs(lineage) == [(normalize_uri(c["table"]), round_)]
                assert r["table_version"] == round_


def test_every_model_version_carries_its_runs_tables(served):
    shared = []
    with tracking_at(served["url"]):
        for c in served["clients"]:
            assert [r["version"] for r in c["rounds"]] == ["1", "2", "3"]
            for round_, r in enumerate(c["rounds"]):
                expected = [(normalize_uri(c["table"]), round_)]
                for name, version in ((f"model-{c['client']}", r["version"]),
                                      ("shared", r["shared_version"])):  # fmt: skip
                    lineage = lp.get_lineage(name, version)
                    assert lineage.run.run_id == r["run_id"]
                    assert table_inputs(lineage) == expected
                shared.append(int(r["shared_version"]))
    assert sorted(shared) == list(range(1, CLIENTS * ROUNDS + 1))  # none lost, none twice


def test_every_alias_change_is_an_event_exactly_once(served):
    client = MlflowClient(served["url"], served["url"])
    shared = events_in_mlflow(client, "shared")
    for c in served["clients"]:
        n, versions = c["client"], [r["version"] for r in c["rounds"]]
        own = events_in_mlflow(client, f"model-{n}")
        assert [(e.kind, e.alias, e.version, e.replaced) for e in own] == [
            ("alias_set", "champion", "1", ()),
            ("alias_set", "champion", "2", ("1",)),
            ("alias_set", "champion", "3", ("2",)),
        ]
        assert all(e.run_id == r["run_id"] for e, r in zip(own, c["rounds"], strict=True))
        mine = [e for e in shared if e.alias == f"client-{n}"]
        shared_versions = [r["shared_version"] for r in c["rounds"]]
        assert [(e.version, e.replaced) for e in mine] == [
            (shared_versions[0], ()),
            (shared_versions[1], (shared_versions[0],)),
            (shared_versions[2], (shared_versions[1],)),
        ]
        assert [(t.uri, t.version) for e in mine for t in e.tables] == [
            (normalize_uri(c["table"]), v) for v in range(ROUNDS)
        ]
        # the index in PostgreSQL holds the same events, once each
        indexed = indexed_events(served["index"], f"model-{n}")
        assert [e.event_id for e in indexed] == [e.event_id for e in own]
        assert client.get_model_version_by_alias(f"model-{n}", "champion").version == versions[-1]
    assert len(shared) == CLIENTS * ROUNDS
    assert [e.event_id for e in indexed_events(served["index"], "shared")] == [
        e.event_id for e in shared
    ]


def index_answers(served) -> dict:
    uri = served["lineage_uri"]
    answers = {}
    for c in served["clients"]:
        n = c["client"]
        answers[n] = (
            lp.impact(c["table"], tracking_uri=uri).to_dict(),
            lp.timeline(model=f"model-{n}", tracking_uri=uri).to_dict()["entries"],
            lp.show(f"model-{n}", "champion", tracking_uri=uri).to_dict(),
        )
    return answers


def test_the_index_answers_consistently_and_reindex_rebuilds_it(served):
    before = index_answers(served)
    for c in served["clients"]:
        n, rounds = c["client"], c["rounds"]
        impact, entries, show = before[n]
        assert {r["run_id"] for r in impact["runs"]} == {r["run_id"] for r in rounds}
        assert {(v["name"], v["version"]) for v in impact["model_versions"]} == {
            *((f"model-{n}", r["version"]) for r in rounds),
            *(("shared", r["shared_version"]) for r in rounds),
        }
        held = {(v["name"], v["version"]): v.get("aliases", []) for v in impact["model_versions"]}
        assert held[(f"model-{n}", "3")] == ["champion"]
        assert held[("shared", rounds[-1]["shared_version"])] == [f"client-{n}"]
        kinds = [e["kind"] for e in entries]
        assert (kinds.count("registration"), kinds.count("alias_set")) == (ROUNDS, ROUNDS)
        assert (show["version"], show["run"]["run_id"]) == ("3", rounds[-1]["run_id"])
        assert [(i["uri"], i["version"]) for i in show["run"]["inputs"]] == [
            (normalize_uri(c["table"]), ROUNDS - 1)
        ]
    summary = lp.reindex(tracking_uri=served["lineage_uri"])
    runs = CLIENTS * ROUNDS
    assert (summary.runs, summary.model_versions, summary.events) == (runs, 2 * runs, 2 * runs)
    assert index_answers(served) == before
