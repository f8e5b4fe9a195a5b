"""The registry UI of ``mlflow server --app-name lineage`` (shipped as ``lineage_plugin.ui``).

Nothing here is imported at plugin load: MLflow imports :mod:`lineage_plugin.ui.app` (or
:mod:`lineage_plugin.ui.auth`) only when a server is started with ``--app-name``.
"""
