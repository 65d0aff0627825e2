"""Validation and the store: stage and check each kind (pandera), quarantine failing rows, merge valid rows into the kept tables."""
