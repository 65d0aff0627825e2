"""Benchmark tooling (b12screen bench): not imported by a run."""
