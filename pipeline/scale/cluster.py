"""What ``--shards`` and ``--cluster`` accept, checked before anything runs (no Dask imported)."""

from __future__ import annotations

import importlib.util
import re

from pipeline.errors import UsageError

EXTRA_MODULES = ("dask", "distributed", "prefect_dask")
LOCAL = "local"
_ADDRESS = re.compile(r"^(tcp|tls)://[^\s/]+:\d+$")


def require_cluster_extra() -> None:
    """One line when the optional ``cluster`` extra is not installed."""
    missing = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            "--shards needs the cluster extra (dask, distributed, prefect-dask), not installed "
            "here: pip install 'b12screen[cluster]'"
        )


def check_cluster(cluster: str) -> str:
    """``local`` (a distributed.LocalCluster in this process) or a scheduler's address."""
    if cluster == LOCAL or _ADDRESS.match(cluster):
        return cluster
    raise UsageError(
        f"--cluster {cluster!r}: give 'local' or a Dask scheduler's address, tcp://host:port"
    )


_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def share_of(memory_limit: str | None, parts: int) -> str | None:
    """Each of ``parts`` shards' share of a memory limit (DuckDB's spelling): shards running
    at once on one machine together stay under the run's ``--memory-limit``."""
    if memory_limit is None or parts <= 1:
        return memory_limit
    match = _MEMORY.match(memory_limit)
    if not match:
        return memory_limit
    total = float(match.group(1)) * _UNITS[match.group(2).upper()]
    return f"{max(1, int(total / parts / 2**20))}MiB"
