"""Delta tables as the plugin sees them: resolve a version, list commits, tell whether a
version is still readable. One module per engine (``log``: the local ``_delta_log`` reader;
``delta_rs``: the ``deltalake`` package; ``spark``: Spark SQL) behind the functions the layers
above call: :func:`lineage_plugin.delta.log.resolve`, :mod:`lineage_plugin.delta.history` and
:mod:`lineage_plugin.delta.readability`. Importing it imports no engine.
"""
