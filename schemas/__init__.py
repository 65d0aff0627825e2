"""Pandera schemas for the extracts (see schemas/extracts.py)."""
