"""b12screen: nightly cohort screening for vitamin B12 deficiency and cytopenias.

The package is plain Python, callable without Prefect. Data flows
extracts -> ingest (DuckDB) -> validate (pandera) -> staging (sql/staging) ->
criteria (sql/criteria) -> outputs (worklist, flags, quarantine, audit, run.json).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("b12screen")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"
