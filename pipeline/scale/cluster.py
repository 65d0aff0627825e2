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
