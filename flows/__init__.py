"""Prefect flows: thin wrappers that call the same pipeline stages as the CLI."""
