"""The one way text from outside the code becomes part of a SQL statement.

Column names come from extract headers, file names from the extracts folder, options from the
command line: none of them may ever be read by DuckDB as SQL. Every such piece goes through one
of these helpers (or, better, a ``?`` parameter where DuckDB accepts one), and file paths go
through :func:`literal_files` so that DuckDB's readers never expand ``[``, ``*`` or ``?`` in
them as a glob.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier, whatever it holds (quotes, NUL aside)."""
    if "\x00" in name:
        raise ValueError("an identifier cannot hold a NUL character")
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a SQL string literal."""
    if "\x00" in text:
        raise ValueError("a string literal cannot hold a NUL character")
    return "'" + text.replace("'", "''") + "'"


def path_literal(path: Path) -> str:
    """A path DuckDB writes to (COPY ... TO) or opens without globbing (temp_directory)."""
    return literal(Path(path).as_posix())


# DuckDB's memory settings: a number and a unit, as its own SET memory_limit accepts them.
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


def memory_setting(value: str) -> str:
    """A validated memory size (``3GB``, ``512MiB``) in DuckDB's spelling; ValueError otherwise."""
    match = _MEMORY.match(value)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"not a memory size: {value!r} (use a number and a unit, as 3GB or 512MB)")
    number, unit = match.groups()
    unit = unit.upper().replace("IB", "iB")
    return f"{number}{unit}"


_UNIT_BYTES = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNIT_BYTES |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def memory_bytes(value: str) -> int | None:
    """The bytes of a memory size as :func:`memory_setting` takes it or DuckDB prints it
    (``2.7 GiB``); None when it is not one."""
    match = _MEMORY.match(value)
    if not match:
        return None
    return int(float(match.group(1)) * _UNIT_BYTES[match.group(2).upper()])


def memory_limit_bytes(con) -> int | None:
    """The DuckDB connection's memory limit in bytes (None when it cannot be read)."""
    ((limit,),) = con.execute("SELECT current_setting('memory_limit')").fetchall()
    return memory_bytes(str(limit))


@contextlib.contextmanager
def optimizer_disabled(con, name: str) -> Iterator[None]:
    """Run the ``with`` block with DuckDB's optimizer pass ``name`` (a name in
    ``duckdb_optimizers()``) disabled as well as any already disabled; the setting is
    restored after, also when the block fails."""
    ((was,),) = con.execute("SELECT current_setting('disabled_optimizers')").fetchall()
    names = [n.strip() for n in str(was).split(",") if n.strip()]
    con.execute(f"SET disabled_optimizers = {literal(','.join([*names, name]))}")
    try:
        yield
    finally:
        con.execute(f"SET disabled_optimizers = {literal(str(was))}")


@contextlib.contextmanager
def literal_files(paths: Sequence[Path]) -> Iterator[list[str]]:
    """SQL literals naming each of ``paths`` such that DuckDB opens exactly that file.

    DuckDB's readers treat ``[``, ``*``, ``?`` and ``**`` in a path as a glob, and a backslash
    cannot be escaped at all, so a file named ``labs_[ab].csv`` would be read as ``labs_a.csv``.
    Each file is reached instead through a symbolic link with a plain name (its suffix kept, so
    compression is still recognised by ``.gz``) in a private folder that lives as long as the
    ``with`` block: the statements that read them must run inside it.
    """
    with tempfile.TemporaryDirectory(prefix="b12screen-read-") as folder:
        names: list[str] = []
        for number, path in enumerate(paths):
            suffix = "".join(s for s in Path(path).suffixes[-2:] if re.fullmatch(r"\.\w+", s))
            link = Path(folder) / f"input{number:06d}{suffix.lower()}"
            os.symlink(Path(path).resolve(), link)
            names.append(literal(link.as_posix()))
        yield names
