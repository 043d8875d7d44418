"""Tables kept in chunks: a run's rows written out as part files while it goes, and read back as one table.

A run with an output directory writes the rows of its ``metrics``, ``events`` and ``process`` tables that can
no longer change to ``<out>/parts/<table>/part-00000.parquet``, ``part-00001.parquet``, ... (each written
atomically, :class:`PartFiles`) and keeps in memory only the rows since (:class:`~swarmopt.results.Collector`
decides when). :class:`StoredTable` is such a table: its chunks (part files, or Arrow tables in memory) in
order, then the rows not written yet. It reads the whole table, or some columns and rows of it, and writes it
as one Parquet file, one chunk in memory at a time.

Filters are pyarrow's (``[(column, op, value), ...]``, all must hold; ``op`` one of ``==``, ``!=``, ``<``,
``<=``, ``>``, ``>=``, ``in``), applied the same way to the chunks and to the rows in memory.
"""

from __future__ import annotations

import operator
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from swarmopt.files import atomic_path

CHUNK_ROWS = 2_000  # rows of a table held in memory before they are written out as one part
Chunk = Union[Path, pa.Table]
Filters = Sequence[tuple[str, str, Any]]
_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge}


class PartFiles:
    """Part files under ``directory``: ``<table>/part-00000.parquet``, ... in the
    order written, each atomically (a reader never sees half a part).
    ``on_first()`` runs once, before the first part is written."""

    def __init__(self, directory: str | Path, on_first: Callable[[], None] | None = None) -> None:
        self.directory = Path(directory)
        self.on_first = on_first
        self.written: dict[str, int] = {}

    def write(self, table: str, df: pd.DataFrame) -> Path:
        """Write ``df`` (no index) as the next part of ``table``; returns its path."""
        if self.on_first is not None:
            self.on_first()
            self.on_first = None
        n = self.written.get(table, 0)
        folder = self.directory / table
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{n:05d}.parquet"
        with atomic_path(path) as tmp:
            df.to_parquet(tmp, index=False)
        self.written[table] = n + 1
        return path

    def remove(self) -> None:
        """Delete the directory and every part in it."""
        shutil.rmtree(self.directory, ignore_errors=True)


def where(df: pd.DataFrame, filters: Filters | None) -> pd.DataFrame:
    """The rows of ``df`` for which every filter holds (NaN and missing values match nothing)."""
    if not filters or df.empty:
        return df
    mask = np.ones(len(df), dtype=bool)
    for col, op, value in filters:
        hit = df[col].isin(list(value)) if op == "in" else _OPS[op](df[col], value)
        mask &= hit.fillna(False).to_numpy(dtype=bool)
    return df[mask]


def in_memory(chunk: Chunk) -> pa.Table:
    """The chunk as an Arrow table (a part file read whole)."""
    return chunk if isinstance(chunk, pa.Table) else pq.read_table(chunk, use_threads=False)


def _schema(chunk: Chunk) -> pa.Schema:
    return chunk.schema if isinstance(chunk, pa.Table) else pq.read_schema(chunk)


def _may_match(group: pq.RowGroupMetaData, filters: Filters | None) -> bool:
    """False when the row group's min/max statistics rule out a filter (a
    comparison with a number or text; ``in`` and ``!=`` are never ruled out)."""
    stats = {}
    for j in range(group.num_columns):
        col = group.column(j)
        if col.statistics is not None and col.statistics.has_min_max:
            stats[col.path_in_schema] = (col.statistics.min, col.statistics.max)
    for col, op, value in filters or ():
        if col not in stats or op in ("in", "!="):
            continue
        lo, hi = stats[col]
        try:
            ruled_out = {"==": not lo <= value <= hi, "<": not lo < value, "<=": not lo <= value,
                         ">": not hi > value, ">=": not hi >= value}[op]
        except TypeError:  # statistics of another type than the value: no conclusion
            continue
        if ruled_out:
            return False
    return True


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns of ``schema``, in its order and types (a missing column all null)."""
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


@dataclass(frozen=True)
class StoredTable:
    """A table as ``chunks`` (Parquet part files or Arrow tables, in order)
    followed by ``tail``, the rows not written out yet (a DataFrame of the same
    columns; empty when there are none). Reading it gives the DataFrame the rows
    would make in one piece: every chunk was written from such a DataFrame and
    Parquet keeps pandas' types."""

    chunks: tuple[Chunk, ...]
    tail: pd.DataFrame

    def _pieces(self, columns: list[str] | None, filters: Filters | None) -> Iterator[pa.Table]:
        for chunk in self.chunks:
            if isinstance(chunk, pa.Table):
                yield chunk if columns is None else chunk.select(columns)
                continue
            part = pq.ParquetFile(chunk)
            for i in range(part.num_row_groups):
                if _may_match(part.metadata.row_group(i), filters):
                    yield part.read_row_group(i, columns=columns, use_threads=False)

    def scan(self, columns: Sequence[str] | None = None, filters: Filters | None = None) -> Iterator[pd.DataFrame]:
        """The rows for which ``filters`` hold (all by default), with ``columns``
        (all by default), as DataFrames in order: one per chunk (per row group of
        a part file), then the rows in memory; at most one chunk is read at a time."""
        cols = None if columns is None else list(columns)
        need = None if cols is None else list(dict.fromkeys([*cols, *(f[0] for f in filters or ())]))
        for piece in self._pieces(need, filters):
            df = where(piece.to_pandas(), filters)
            yield df if cols is None else df[cols]
        tail = where(self.tail, filters)
        yield tail if cols is None else tail.reindex(columns=cols)

    def load(self, columns: Sequence[str] | None = None, filters: Filters | None = None) -> pd.DataFrame:
        """The rows for which ``filters`` hold (all by default), in order, with
        ``columns`` (all by default; a column the table lacks is all missing
        when the table is only rows in memory, a KeyError otherwise)."""
        frames = list(self.scan(columns, filters))
        if len(frames) == 1:  # only rows in memory: the very DataFrame when nothing is selected
            return frames[0]
        # empty pieces are left out (pandas lets them change a column's type); all empty: the first, typed one
        rows = [f for f in frames if len(f)] or frames[:1]
        return pd.concat(rows, ignore_index=True) if len(rows) > 1 else rows[0].reset_index(drop=True)

    def count(self, filters: Filters | None = None) -> int:
        """Number of rows for which ``filters`` hold (all by default); reads only
        the filtered columns of the chunks, or nothing but their metadata."""
        if filters:
            return sum(len(f) for f in self.scan([filters[0][0]], filters))
        return len(self.tail) + sum(c.num_rows if isinstance(c, pa.Table) else pq.ParquetFile(c).metadata.num_rows
                                    for c in self.chunks)

    def columns(self) -> list[str]:
        """The column names, in order (the union over the chunks and the tail)."""
        names = [n for c in self.chunks for n in _schema(c).names] + list(self.tail.columns)
        return list(dict.fromkeys(names))

    def write(self, path: str | Path) -> None:
        """Write the table to the Parquet file ``path`` atomically, one chunk in
        memory at a time (each chunk a row group); a table that is only rows in
        memory is written with ``DataFrame.to_parquet``. Nothing to do when
        ``path`` is the table's only chunk."""
        path = Path(path)
        if self.chunks == (path,) and not len(self.tail):
            return
        if not self.chunks:
            with atomic_path(path) as tmp:
                self.tail.to_parquet(tmp, index=False)
            return
        tail = [pa.Table.from_pandas(self.tail, preserve_index=False)] if len(self.tail) else []
        schemas = [_schema(c) for c in self.chunks] + [t.schema for t in tail]
        same = all(s.equals(schemas[0], check_metadata=False) for s in schemas)
        # chunks of one table share their columns; should a rare column come and go, the types are widened
        schema = schemas[0] if same else pa.unify_schemas(schemas, promote_options="permissive")
        with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as out:
            for table in [*self.chunks, *tail]:
                table = in_memory(table)
                out.write_table(table if same else _conform(table, schema))


__all__ = ["CHUNK_ROWS", "PartFiles", "StoredTable", "in_memory", "where"]
