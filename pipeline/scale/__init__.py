"""One screening run on N shards of patients (issue 14; docs/scale-out.md).

    coordinator (pipeline/scale/coordinate.py)      shards (pipeline/scale/shard.py), anywhere
    ─────────────────────────────────────────       ───────────────────────────────────────────
    prepare, ingest (the run's database)
    split: raw_<kind> and the kept tables by a
      hash of the staged patient_id ──────────────▶ shard k: its own DuckDB with its patients'
                                                     kept rows; validate, merge, screen
    combine ◀───────────────────────────────────── quarantine, flags, measure members, the
      kept tables, quarantine, flags, measures       kept rows after the merge (Parquet)
    outputs, publish (one registry entry)

The split happens after ingest, on the rows exactly as the readers present them (``_rid``,
``source_file``, ``row_number`` and the text of every column), so provenance and quarantine
are those of the original files: a malformed CSV line is quarantined by the coordinator's
read, and a row whose patient_id is missing goes to shard 0, whose validation quarantines it
as a single-node run does. The hash is of ``nullif(trim(patient_id), '')``, the staging
SQL's own patient_id, so every row of a patient, and the patient's kept rows, meet in one shard.

Everything made from counts (the audit, the measures, disclosure control, the worklist's
numbers) is made by the coordinator from the combined tables, never per shard. A shard that
fails fails the run: the coordinator's transaction is rolled back, so the stored state and the
previous outputs stay as they were; a shard's own database is thrown away with its folder.

This package needs no Prefect and no Dask: :func:`run_sharded` takes the function that screens
the shards (in this process, one after another, by default). flows/sharded.py maps them as
Prefect tasks on a Dask cluster (prefect-dask's ``DaskTaskRunner``).
"""

from pipeline.scale.coordinate import run_sharded

__all__ = ["run_sharded"]
