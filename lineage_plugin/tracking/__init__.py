"""Capture: read hooks (deltalake, polars; Spark later), run attachment, environment.

Kept free of imports: MLflow loads the run-context-provider entry point at start-up.
"""
