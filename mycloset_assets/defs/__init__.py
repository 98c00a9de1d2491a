"""The Dagster layer: assets, resources and checks over the checkpoint system (no network code here)."""
