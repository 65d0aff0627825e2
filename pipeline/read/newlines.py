"""Line endings of a CSV extract: one kind read as it is, a mix rewritten to LF first.

DuckDB's CSV reader takes one line ending per file (LF, CRLF or CR-only, from the first line)
and fails the whole file, and with it the run's transaction, at the first line that ends
otherwise. So before a CSV file is read, :func:`needs_normalising` scans it once:

* no CR byte at all (the common case): read as it is. The scan is a ``memchr`` per 16 MB
  chunk over a file the SHA-256 pass has just read, about 2 % of DuckDB's own read of it
  (docs/reliability.md has the figures);
* CR bytes, and every line ending the same (every CR followed by LF and every LF preceded by
  CR, or no LF at all): read as it is;
* anything else: :func:`normalised_copy` streams the file (a ``.gz`` decompressed) into a
  temporary LF-only copy beside DuckDB's spill files, every CRLF and lone CR replaced by one LF,
  and that copy is read instead and removed after. Each line ending stays one line ending, so
  the line numbers of quarantined lines are the file's own.

The scan does not parse quotes: a CRLF inside a quoted value of an LF file makes the file
rewritten too, and the value then holds LF where it held CRLF (the one change the rewrite
makes to any value). A line that is still broken after the rewrite (a stray CR inside a field
splits it in two) is a malformed line like any other, quarantined with its text.
"""

from __future__ import annotations

import contextlib
import gzip
import mmap
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.sqltext import literal_files

_CHUNK = 16 << 20
_LF = pa.scalar(ord("\n"), pa.uint8())


def _chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes (decompressed for ``.gz``) in chunks, never the whole file at once.
    A chunk never ends in CR: that byte is moved to the next one, so no CRLF is split."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    carry = b""
    with opener(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            chunk = carry + chunk
            carry = b"\r" if chunk.endswith(b"\r") else b""
            yield chunk[:-1] if carry else chunk
    if carry:
        yield carry


def needs_normalising(path: Path) -> bool:
    """True when the file ends its lines in more than one way (LF, CRLF, CR alone).

    A file that cannot be read or decompressed answers False: the real read names it."""
    lone_lf = crlf = lone_cr = False
    try:
        for chunk in _chunks(path):
            if b"\r" not in chunk:  # memchr: the whole cost for an LF-only file
                lone_lf = lone_lf or b"\n" in chunk
            else:
                pairs = chunk.count(b"\r\n")
                crlf = crlf or pairs > 0
                lone_lf = lone_lf or chunk.count(b"\n") > pairs
                lone_cr = lone_cr or chunk.count(b"\r") > pairs
            if lone_lf + crlf + lone_cr > 1:
                return True
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile):
        return False
    return False


def _count_lf(data: bytes | mmap.mmap) -> int:
    """The LF bytes in ``data``, counted by pyarrow over the bytes in place (a vectorised
    compare and sum): 0.04 CPU s for 76 MB of Observations against 0.10 for ``bytes.count``,
    which tests one byte at a time (docs/benchmarks.md, session 15)."""
    if not len(data):
        return 0
    octets = pa.Array.from_buffers(pa.uint8(), len(data), [None, pa.py_buffer(data)])
    return int(pc.sum(pc.equal(octets, _LF)).as_py())


def line_count(path: Path) -> tuple[int, bool] | None:
    """``(lines, lone CR?)`` of a text file (a ``.gz`` decompressed): its lines as a line
    reader numbers them, the last counted whether or not a newline ends it, and whether any CR
    stands alone (not before an LF). None when the file cannot be read or decompressed: the
    real read names it. An uncompressed file without a CR is counted over a memory map (no
    copy of it read); any other, one chunk of 16 MB at a time (pipeline/read/adapters.py,
    FHIR)."""
    if not path.name.lower().endswith(".gz"):
        try:
            with path.open("rb") as fh:
                if os.fstat(fh.fileno()).st_size == 0:
                    return 0, False
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    if mm.find(b"\r") < 0:  # memchr: no CR, so none stands alone
                        return _count_lf(mm) + (mm[-1:] != b"\n"), False
        except (OSError, ValueError):
            return None
    newlines = crs = pairs = 0
    last = b"\n"
    try:
        for chunk in _chunks(path):
            newlines += _count_lf(chunk)
            if b"\r" in chunk:
                crs += chunk.count(b"\r")
                pairs += chunk.count(b"\r\n")
            last = chunk[-1:] or last
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile):
        return None
    return newlines + (last != b"\n"), crs > pairs


def lines_shorter_than(path: Path, limit: int) -> bool:
    """True when every line of the uncompressed file ``path`` is shorter than ``limit`` bytes:
    the file is shorter than that, or each whole block of ``limit // 2`` bytes holds a newline
    (a line then starts in one block and ends in the next at the latest). One ``memchr`` per
    block over a memory map, stopping at the first newline: a few pages read, not the file.
    False for a ``.gz`` file, one that cannot be read, and a block without a newline."""
    if path.name.lower().endswith(".gz"):
        return False
    block = limit // 2
    try:
        size = path.stat().st_size
        if size < limit:
            return True
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return all(
                mm.find(b"\n", at, at + block) >= 0 for at in range(0, size - block + 1, block)
            )
    except (OSError, ValueError):
        return False


def _lf(chunk: bytes) -> bytes:
    return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


@contextlib.contextmanager
def normalised_copy(path: Path, folder: Path | None) -> Iterator[Path]:
    """A temporary LF-only copy of ``path`` (uncompressed), removed when the block ends.

    ``folder`` is where DuckDB spills (made if missing), else the system's temporary folder."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="b12screen-lf-", suffix=".csv", dir=folder)
    copy = Path(name)
    try:
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in _chunks(path):
                    out.write(_lf(chunk))
        except OSError as exc:  # a full disk names the copy, not the extract (pipeline/shortage.py)
            if exc.filename is None and exc.errno is not None:
                raise OSError(exc.errno, exc.strerror, str(copy)) from None
            raise
        yield copy
    finally:
        with contextlib.suppress(FileNotFoundError):
            copy.unlink()


@contextlib.contextmanager
def lf_source(
    con: duckdb.DuckDBPyConnection, path: Path, source: str
) -> Iterator[tuple[str, bool]]:
    """``(SQL literal to read, rewritten?)`` for the CSV file ``path`` that ``source`` opens:
    ``source`` itself when its line endings are of one kind, else an LF copy's (removed when
    the block ends), written where DuckDB spills."""
    if not needs_normalising(path):
        yield source, False
        return
    ((spill,),) = con.execute("SELECT current_setting('temp_directory')").fetchall()
    # an in-memory database's default ('.tmp', in the current folder): the system's instead
    folder = Path(spill) if spill and spill != ".tmp" else None
    with (
        normalised_copy(path, folder) as copy,
        literal_files([copy]) as (copied,),
    ):
        yield copied, True


def main(argv: list[str] | None = None) -> None:
    """``python -m pipeline.read.newlines FILE...``: whether each file would be read from an
    LF copy, and how long the check took (the figures in docs/reliability.md)."""
    import sys
    import time

    for name in argv if argv is not None else sys.argv[1:]:
        start = time.perf_counter()
        mixed = needs_normalising(Path(name))
        seconds = time.perf_counter() - start
        print(
            f"{name}: {'mixed, read from an LF copy' if mixed else 'read in place'} "
            f"(checked in {seconds:.2f} s)"
        )


if __name__ == "__main__":
    main()
