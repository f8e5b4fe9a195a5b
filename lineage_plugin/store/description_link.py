"""A link from a new model version's description to its lineage page (``MLFLOW_LINEAGE_UI_URL``).

The stock MLflow UI renders a version's description as Markdown, so a line such as
``[Data lineage of this version](<base>/lineage/models/<name>/versions/<version>)`` leads from
the stock pages to the lineage pages (DESIGN.md contract 7). It is written only when the caller
gave no description (``None`` or blank), never over the user's own text; after registration
the description is the user's, and the plugin does not watch ``update_model_version``. A
description that is exactly the plugin's line for *another* version (``copy_model_version``
copies the source's) is written again for the new version.

The version number is known only once MLflow creates the version, so the description is set
with ``update_model_version`` right after the creation, on every backend. That records no
registry event and does not touch the lineage index (the index keeps no description), so
``reindex --check`` stays in sync. A failure is logged; the registration goes on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from lineage_plugin import settings
from lineage_plugin import tags as T

_logger = logging.getLogger(__name__)

LINK_TEXT = "Data lineage of this version"
_SENTENCE = "This link was added by mlflow-delta-lineage."
#: The plugin's own line, for any base, model and version.
_OWN_LINE = re.compile(
    r"\[" + re.escape(LINK_TEXT) + r"\]\((?P<url>https?://[^\s()<>]+)\)\. " + re.escape(_SENTENCE)
)


def lineage_page_url(base: str, name: str, version: Any) -> str:
    """The URL of a model version's lineage page.

    Args:
        base: The lineage server's base URL (no trailing slash).
        name: The registered model (URL-quoted whole, slashes too).
        version: The version number.

    Returns:
        ``<base>/lineage/models/<quoted name>/versions/<version>``.

    Example:
        >>> lineage_page_url("http://mlflow.example:5000", "sales/forecast v2", 3)
        'http://mlflow.example:5000/lineage/models/sales%2Fforecast%20v2/versions/3'
    """
    return f"{base}/lineage/models/{quote(name, safe='')}/versions/{version}"


def link_description(base: str, name: str, version: Any) -> str:
    """The description the plugin gives a new version: a Markdown link and who added it.

    Example:
        >>> print(link_description("http://h", "m", 1))
        [Data lineage of this version](http://h/lineage/models/m/versions/1). This link was ...
    """
    return f"[{LINK_TEXT}]({lineage_page_url(base, name, version)}). {_SENTENCE}"


def needs_link(description: str | None, name: str, version: Any) -> bool:
    """Whether a version's description should get the plugin's link: it is empty or blank, or
    it is exactly the plugin's line for another model version (a copy's)."""
    if description is None or not description.strip():
        return True
    own = _OWN_LINE.fullmatch(description.strip())
    suffix = f"/lineage/models/{quote(name, safe='')}/versions/{version}"
    return own is not None and not own.group("url").endswith(suffix)


def create_with_link(store: Any, tag_keys: Iterable[str], create: Callable[[], Any]) -> Any:
    """Run the stock ``create_model_version`` (``create``) so the new version links to its
    lineage page when ``MLFLOW_LINEAGE_UI_URL`` is set (see the module docstring).

    Args:
        store: The wrapped registry store.
        tag_keys: The keys of the tags the version is created with (prompt versions get no link).
        create: The stock call; returns the new ``ModelVersion``.

    Returns:
        What ``create`` returned, its description the one the version has.
    """
    base = settings.lineage_ui_url()
    if base is None or T.is_prompt_version(tag_keys):
        return create()
    mv = create()
    if needs_link(mv.description, mv.name, mv.version):
        _update(store, mv, base)
    return mv


def _update(store: Any, mv: Any, base: str) -> None:
    text = link_description(base, mv.name, mv.version)
    try:
        updated = store.update_model_version(mv.name, mv.version, text)
    except Exception as exc:
        _logger.warning(
            "mlflow-delta-lineage could not link the description of version %s of %r to its "
            "lineage page: %s. Set it yourself with update_model_version if you want it.",
            mv.version,
            mv.name,
            exc,
        )
        return
    mv.description = text
    if getattr(updated, "last_updated_timestamp", None) is not None:
        mv.last_updated_timestamp = updated.last_updated_timestamp
