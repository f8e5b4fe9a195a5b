"""``diff MODEL V1 V2``: what differs between two model versions, data first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lineage_plugin.errors import LineageError
from lineage_plugin.queries.show import resolve
from lineage_plugin.queries.times import json_output
from lineage_plugin.queries.workspace import Workspace
from lineage_plugin.records import DeltaInput, ModelVersionLineage, drop_nulls


@dataclass(frozen=True, kw_only=True)
class DiffReport:
    """Differences between two model versions, in the order a person debugging reads them.

    Attributes:
        name: Registered model name.
        from_version: The first version.
        to_version: The second version.
        data: Per table: ``change`` (``same``, ``changed``, ``added``, ``removed``,
            ``recreated``), both versions, and the Delta commits between them.
        libraries: ``{"package", "from", "to"}`` for each library version that differs.
        code: ``{"field", "from", "to"}`` for the code fields that differ.
        params: ``{"key", "from", "to"}`` for the run parameters that differ.
    """

    name: str
    from_version: str
    to_version: str
    data: tuple[dict[str, Any], ...]
    libraries: tuple[dict[str, Any], ...]
    code: tuple[dict[str, Any], ...]
    params: tuple[dict[str, Any], ...]

    @property
    def identical(self) -> bool:
        """True when nothing the plugin records differs."""
        changed = [t for t in self.data if t["change"] != "same"]
        return not (changed or self.libraries or self.code or self.params)

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON of ``diff --json`` (commit times as ISO strings with
        ``timestamp_ms``, commit metrics as numbers)."""
        return json_output(
            drop_nulls(
                {
                    "name": self.name,
                    "from_version": self.from_version,
                    "to_version": self.to_version,
                    "identical": self.identical,
                    "data": list(self.data),
                    "libraries": list(self.libraries),
                    "code": list(self.code),
                    "params": list(self.params),
                }
            )
        )


def diff(name: str, v1: str | int, v2: str | int, *, tracking_uri: str | None = None) -> DiffReport:
    """Compare the lineage of two versions of a model.

    Args:
        name: Registered model name.
        v1: The earlier (reference) version: number, alias or stage.
        v2: The version to compare with it.
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        A :class:`DiffReport`.

    Raises:
        LineageError: Unknown model or version.

    Example:
        >>> report = diff("diabetes", 1, 2)
        >>> [(t["name"], t["from"], t["to"], [c["operation"] for c in t["commits"]])
        ...  for t in report.data]
    """
    from lineage_plugin import tags as T

    ws = Workspace(tracking_uri)
    a_num, b_num = resolve(ws, name, str(v1)), resolve(ws, name, str(v2))
    a = T.model_version_lineage(ws.model_version(name, a_num))
    b = T.model_version_lineage(ws.model_version(name, b_num))
    return DiffReport(
        name=name,
        from_version=a_num,
        to_version=b_num,
        data=tuple(_data(a.inputs, b.inputs)),
        libraries=tuple(_libraries(a, b)),
        code=tuple(_code(a, b)),
        params=tuple(_params(ws, a, b)),
    )


def _by_table(inputs: tuple[DeltaInput, ...]) -> dict[str, DeltaInput]:
    out: dict[str, DeltaInput] = {}
    for inp in inputs:
        out.setdefault(inp.uri, inp)  # the first read of each table (training reads come first)
    return out


def _data(a: tuple[DeltaInput, ...], b: tuple[DeltaInput, ...]) -> list[dict[str, Any]]:
    left, right = _by_table(a), _by_table(b)
    out = []
    for uri in sorted(set(left) | set(right)):
        x, y = left.get(uri), right.get(uri)
        item: dict[str, Any] = {
            "uri": uri,
            "name": (x or y).name,
            "from": x.version if x else None,
            "to": y.version if y else None,
            "commits": [],
        }
        if x is None:
            item["change"] = "added"
        elif y is None:
            item["change"] = "removed"
        elif x.table_id and y.table_id and x.table_id != y.table_id:
            item["change"] = "recreated"
        elif x.version == y.version:
            item["change"] = "same"
        else:
            item["change"] = "changed"
            item["direction"] = "forward" if y.version > x.version else "backward"
            item.update(_commits(uri, x.version, y.version))
        out.append(drop_nulls(item))
    changed_first = {"changed": 0, "recreated": 1, "added": 2, "removed": 3, "same": 4}
    return sorted(out, key=lambda t: (changed_first[t["change"]], t["uri"]))


def _commits(uri: str, start: int, end: int) -> dict[str, Any]:
    from lineage_plugin.delta.history import commits_between

    try:
        commits = commits_between(uri, start, end)
    except LineageError as exc:
        return {"error": f"The commits between v{start} and v{end} cannot be read: {exc}"}
    return {"commits": [c.to_dict() for c in commits]}


def _libraries(a: ModelVersionLineage, b: ModelVersionLineage) -> list[dict[str, Any]]:
    ea = a.run.environment if a.run else None
    eb = b.run.environment if b.run else None
    if ea is None or eb is None:
        return []
    left = {"python": ea.python, **ea.packages}
    right = {"python": eb.python, **eb.packages}
    return [
        drop_nulls({"package": p, "from": left.get(p), "to": right.get(p)})
        for p in sorted(set(left) | set(right))
        if left.get(p) != right.get(p)
    ]


def _code(a: ModelVersionLineage, b: ModelVersionLineage) -> list[dict[str, Any]]:
    ca, cb = (_code_fields(m) for m in (a, b))
    return [
        drop_nulls({"field": f, "from": ca.get(f), "to": cb.get(f)})
        for f in sorted(set(ca) | set(cb))
        if ca.get(f) != cb.get(f)
    ]


def _code_fields(m: ModelVersionLineage) -> dict[str, Any]:
    """The recorded code as flat fields; each hashed file is one (``files/train.py``)."""
    fields = m.run.code.to_dict() if m.run and m.run.code else {}
    files = fields.pop("files", None) or {}
    return {**fields, **{f"files/{path}": digest for path, digest in files.items()}}


def _params(ws: Workspace, a: ModelVersionLineage, b: ModelVersionLineage) -> list[dict[str, Any]]:
    runs = [ws.run(m.run.run_id) if m.run else None for m in (a, b)]
    left, right = ({} if r is None else dict(r.data.params) for r in runs)
    return [
        drop_nulls({"key": k, "from": left.get(k), "to": right.get(k)})
        for k in sorted(set(left) | set(right))
        if left.get(k) != right.get(k)
    ]
