"""Tracking- and registry-store plugins for ``lineage+<backend URI>``.

Kept free of imports: MLflow loads the entry points of every installed plugin at start-up.
"""
