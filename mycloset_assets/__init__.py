"""MyCloset Assets: a virtual try-on model zoo run as a Dagster asset pipeline."""

__version__ = "0.1.0"
