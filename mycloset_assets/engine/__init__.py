"""The plain-Python try-on engine: checkpoint selection, loaded-network pool, steps, results (no Dagster)."""
