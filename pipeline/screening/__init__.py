"""Screening: the criteria SQL in rules order makes the run's flags; the care-process measures."""
