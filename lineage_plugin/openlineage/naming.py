"""OpenLineage names: of datasets (Delta tables), runs and jobs, and event times.

- A table is named by the OpenLineage naming conventions (:func:`openlineage_dataset`).
- A run is the MLflow run id written as a UUID (:func:`openlineage_run_id`).
- A job is what stays the same from one run to the next: the experiment is the namespace
  (``mlflow/<experiment_id>``, :func:`job_namespace`) and the entry point the name
  (:func:`job_name`), so a lineage backend shows one job with many runs. Never the run name,
  which MLflow makes up anew for every run.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from lineage_plugin.records import CodeVersion

#: The job name of a run whose entry point was not recorded.
UNKNOWN_ENTRY_POINT = "unknown-entry-point"

_HEX_RUN_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs", "abfs": "abfss"}
# Object stores: the name is the key inside the bucket or container, without a leading slash.
_OBJECT_STORES = frozenset({"s3", "gs", "abfss", "wasbs", "wasb", "az", "adl", "azure"})


def job_namespace(experiment_id: str | None) -> str:
    """The OpenLineage job namespace of a run: ``mlflow/<experiment_id>``.

    MLflow groups runs by experiment, so two ``train.py`` scripts tracked in two experiments
    stay two jobs. ``mlflow`` when the experiment is unknown.

    Example:
        >>> job_namespace("42")
        'mlflow/42'
    """
    return f"mlflow/{experiment_id}" if experiment_id else "mlflow"


def job_name(code: CodeVersion | None) -> str:
    """The OpenLineage job name of a run: its entry point, the same for every run of it.

    The file name of the script the process ran (``train.py``, whatever the folder it was
    started from: the path in ``argv`` changes with the working directory, the file name does
    not); for ``python -m package`` the package (``argv[0]`` is its ``__main__.py``); ``python
    -c`` and an interactive interpreter are ``python -c`` and ``python``; a notebook kernel or
    a test runner is named by its launcher (``ipykernel_launcher.py``, ``pytest``), as MLflow's
    ``mlflow.source.name`` does. :data:`UNKNOWN_ENTRY_POINT` when no entry point was recorded.

    Args:
        code: The run's recorded code version (``argv`` is what matters).

    Example:
        >>> from lineage_plugin.records import CodeVersion
        >>> job_name(CodeVersion(argv=("pipelines/train.py", "--alpha", "0.1")))
        'train.py'
        >>> job_name(CodeVersion(argv=("/src/features/__main__.py",)))
        'features'
    """
    argv = code.argv if code is not None else ()
    if not argv:
        return UNKNOWN_ENTRY_POINT
    script = argv[0]
    if script == "-c":
        return "python -c"
    if script in ("", "-"):
        return "python"
    normalised = script.replace("\\", "/").rstrip("/")
    name = os.path.basename(normalised)
    if name in ("__main__.py", "__init__.py"):
        name = os.path.basename(os.path.dirname(normalised)) or name
    return name or UNKNOWN_ENTRY_POINT


def openlineage_dataset(uri: str) -> tuple[str, str]:
    """The OpenLineage ``(namespace, name)`` of a table URI.

    Follows https://openlineage.io/docs/spec/naming: local files are namespace ``file`` and the
    absolute path; object stores are ``<scheme>://<bucket or container@account>`` and the key
    without a leading slash (``s3a``/``s3n`` become ``s3``, ``gcs`` becomes ``gs``, ``abfs``
    becomes ``abfss``); anything else (``hdfs``, ``dbfs``...) is ``<scheme>://<authority>`` (or
    just ``<scheme>`` without one) and the path.

    Args:
        uri: A normalised table URI (``file:///abs/path``, ``s3://bucket/key``...).

    Returns:
        ``(namespace, name)``.

    Example:
        >>> openlineage_dataset("s3://bucket/sales/orders")
        ('s3://bucket', 'sales/orders')
        >>> openlineage_dataset("file:///data/orders")
        ('file', '/data/orders')
    """
    if "://" not in uri and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", uri):
        return "file", uri.rstrip("/") or "/"  # a bare local path
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    scheme = _SCHEME_ALIASES.get(scheme, scheme)
    if scheme == "file":
        rest = uri[len("file://") :] if uri.startswith("file://") else parsed.path
        if _WINDOWS_DRIVE.match(rest):  # file://C:\data (Windows): no host, the rest is a path
            return "file", rest
        if parsed.netloc in ("", "localhost"):
            return "file", parsed.path.rstrip("/") or "/"
        return f"file://{parsed.netloc}", parsed.path.rstrip("/") or "/"
    if scheme in _OBJECT_STORES:
        return f"{scheme}://{parsed.netloc}", parsed.path.strip("/") or "/"
    namespace = f"{scheme}://{parsed.netloc}" if parsed.netloc else scheme
    return namespace, parsed.path.rstrip("/") or "/"


def openlineage_run_id(run_id: str) -> str:
    """An MLflow run id as an OpenLineage ``runId`` (a UUID).

    Args:
        run_id: The MLflow run id.

    Returns:
        The 32 hex digits with dashes (``8-4-4-4-12``); for any other id, a ``uuid5`` derived
        from it (stable across exports).

    Example:
        >>> openlineage_run_id("0123456789abcdef0123456789abcdef")
        '01234567-89ab-cdef-0123-456789abcdef'
    """
    if _HEX_RUN_ID.match(run_id):
        return str(uuid.UUID(hex=run_id))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlflow-run:{run_id}"))


def iso_time(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds (``2024-05-01T12:00:00.123Z``)."""
    seconds, millis = divmod(int(ms), 1000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


def now_utc_ms() -> int:
    """Now, in milliseconds since the epoch."""
    return int(datetime.now(timezone.utc).timestamp() * 1000)
