"""OpenLineage events checked against the official JSON schemas, with no network.

The schemas are ``../shared/openlineage-spec/`` (copied unchanged from the OpenLineage
repository: ``OpenLineage.json`` and the standard facets) and the plugin's own
``docs/openlineage-facets.json``; every ``$ref`` between them resolves from a local registry.
An event is valid when it is a valid ``RunEvent`` and each of its facets is valid against the
schema its ``_schemaURL`` names, wherever that schema is one of these files (a facet with
another schema, such as the client's ``tags``, is held to the spec's base facet only).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT.parent / "shared" / "openlineage-spec"
FACETS_FILE = ROOT / "docs" / "openlineage-facets.json"
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"

_schemas: dict[str, dict[str, Any]] = {}


def schemas() -> dict[str, dict[str, Any]]:
    """Every local schema by its ``$id``."""
    if not _schemas:
        if not (SPEC_DIR / "OpenLineage.json").is_file():
            raise FileNotFoundError(f"the OpenLineage schemas are not at {SPEC_DIR}")
        for path in [SPEC_DIR / "OpenLineage.json", *sorted(SPEC_DIR.glob("facets/*.json"))]:
            schema = json.loads(path.read_text())
            _schemas[schema["$id"]] = schema
        ours = json.loads(FACETS_FILE.read_text())
        _schemas[ours["$id"]] = ours
    return _schemas


def _validator(ref: str) -> Any:
    import jsonschema
    from referencing import Registry, Resource

    registry = Registry().with_resources(
        (uri, Resource.from_contents(schema)) for uri, schema in schemas().items()
    )
    return jsonschema.Draft202012Validator(
        {"$ref": ref},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def facets_of(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, facet)`` for every facet of the event (run, job, datasets)."""
    yield from (("run." + k, f) for k, f in event.get("run", {}).get("facets", {}).items())
    yield from (("job." + k, f) for k, f in event.get("job", {}).get("facets", {}).items())
    for side in ("inputs", "outputs"):
        for i, dataset in enumerate(event.get(side, [])):
            for group in ("facets", "inputFacets", "outputFacets"):
                for key, facet in dataset.get(group, {}).items():
                    yield f"{side}[{i}].{group}.{key}", facet


def problems(event: dict[str, Any]) -> list[str]:
    """What makes ``event`` invalid (empty when it is valid)."""
    found = [f"event: {e.message}" for e in _validator(RUN_EVENT).iter_errors(event)]
    for where, facet in facets_of(event):
        url = facet.get("_schemaURL", "") if isinstance(facet, dict) else ""
        if url.split("#")[0] in schemas():
            found += [f"{where}: {e.message}" for e in _validator(url).iter_errors(facet)]
    return found


def checked_facet_schemas(event: dict[str, Any]) -> set[str]:
    """The facet schemas (``_schemaURL``) :func:`problems` held the event's facets to."""
    return {
        f["_schemaURL"]
        for _, f in facets_of(event)
        if f.get("_schemaURL", "").split("#")[0] in schemas()
    }


class Receiver:
    """An OpenLineage HTTP endpoint on loopback (``POST /api/v1/lineage``), in a thread.

    Every event posted is validated (:func:`problems`): a valid one is kept in ``events`` and
    answered 201, an invalid one in ``rejected`` (with its problems) and answered 400, as a
    real backend refuses a malformed event.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.rejected: list[tuple[dict[str, Any], list[str]]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.paths.append(self.path)
                try:
                    event = json.loads(body)
                    found = problems(event)
                except ValueError as exc:
                    event, found = {}, [f"not JSON: {exc}"]
                if found:
                    receiver.rejected.append((event, found))
                    self.send_response(400)
                else:
                    receiver.events.append(event)
                    self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def of_run(self, run_id: str) -> list[dict[str, Any]]:
        """The events received for an MLflow run, in the order they came."""
        return [e for e in self.events if e["run"]["runId"].replace("-", "") == run_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
