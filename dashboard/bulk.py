"""Many rows written fast: an upsert of column arrays, and a stage published in one statement.

`upsert_arrays` (PostgreSQL) sends one array a column: a few parameters a statement,
whatever its rows, where thousands of placeholders cost the driver more than the database
its work.

A `Stage` takes rows as they are ready into a table only this connection sees (SQLite's
temp database, PostgreSQL's pg_temp), outside any transaction: it locks nothing other
connections wait for. `publish` then copies them into the real table with one INSERT …
SELECT … ON CONFLICT inside the caller's transaction, which leaves the database only its
own work for the end.
"""

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model
from django.db.models.constants import OnConflict

ARRAY_BATCH = 5000  # rows a statement of column arrays


def upsert_arrays(
    model: type[Model],
    names: Sequence[str],
    rows: Sequence[tuple],
    *,
    unique: Sequence[str] = ("id",),
    update: Sequence[str] | None = None,
) -> None:
    """PostgreSQL: INSERT … SELECT FROM unnest(one array a column) ON CONFLICT (unique) DO
    UPDATE SET `update` (every other column), of rows already in the driver's types."""
    if not rows:
        return
    meta = model._meta
    fields = [meta.get_field(name) for name in names]
    update = update if update is not None else [n for n in names if n not in unique]
    suffix = _on_conflict(model, fields, unique, update)
    table = connection.ops.quote_name(meta.db_table)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields)
    # Names from the model's metadata, quoted; every value is a bound parameter.
    sql = (
        f"INSERT INTO {table} ({', '.join(_column(f) for f in fields)}) "  # noqa: S608
        f"SELECT * FROM unnest({arrays}) {suffix}"
    )
    with connection.cursor() as cursor:
        for start in range(0, len(rows), ARRAY_BATCH):
            columns = zip(*rows[start : start + ARRAY_BATCH], strict=True)
            cursor.execute(sql, [list(column) for column in columns])


class Stage:
    """A temporary table with `names`' columns of `model`, dropped on leaving `with`."""

    def __init__(self, model: type[Model], names: Sequence[str], label: str) -> None:
        self.model = model
        self.fields: list[Field] = [model._meta.get_field(name) for name in names]
        self._name = connection.ops.quote_name(f"stage_{label}")
        # Always named in the connection's temporary schema: never a real table's name.
        schema = "pg_temp" if connection.vendor == "postgresql" else "temp"
        self.table = f"{schema}.{self._name}"
        self._columns = ", ".join(_column(f) for f in self.fields)
        self.rows = 0

    def __enter__(self) -> "Stage":
        source = connection.ops.quote_name(self.model._meta.db_table)
        with connection.cursor() as cursor:
            # A sync killed half-way leaves its stage behind on a kept connection.
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
            # Column types copied from the real table; names only from model metadata.
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self._name} AS "  # noqa: S608
                f"SELECT {self._columns} FROM {source} WHERE 1 = 0"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")

    def add(self, rows: Sequence[tuple]) -> None:
        """Stage rows already in the database driver's types, in the columns' order."""
        if not rows:
            return
        # One short statement, prepared once and run for every row by the driver: a
        # multi-row VALUES list costs more to build, convert and parse than to run.
        one = ", ".join(["%s"] * len(self.fields))
        sql = f"INSERT INTO {self.table} ({self._columns}) VALUES ({one})"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)
        self.rows += len(rows)

    def publish(
        self,
        model: type[Model],
        columns: dict[str, str | tuple[Any]],
        *,
        unique: Sequence[str],
        update: Sequence[str],
        where: str = "",
    ) -> None:
        """INSERT INTO `model` (each key of `columns`) SELECT (a staged column's name, or a
        1-tuple of a value bound as a parameter) FROM the stage [WHERE `where`] ON CONFLICT
        (`unique`) DO UPDATE SET `update` to the new values."""
        if not self.rows:
            return
        meta = model._meta
        targets = [meta.get_field(name) for name in columns]
        picked, params = [], []
        for source in columns.values():
            if isinstance(source, tuple):
                picked.append("%s")
                params.append(source[0])
            else:
                picked.append(_column(self.model._meta.get_field(source)))
        suffix = _on_conflict(model, targets, unique, update)
        # "WHERE": SQLite reads ON after a bare FROM as a join's; names from metadata.
        sql = (
            f"INSERT INTO {connection.ops.quote_name(meta.db_table)} "  # noqa: S608
            f"({', '.join(_column(f) for f in targets)}) "
            f"SELECT {', '.join(picked)} FROM {self.table} WHERE {where or '1 = 1'} {suffix}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _on_conflict(
    model: type[Model], fields: list[Field], unique: Sequence[str], update: Sequence[str]
) -> str:
    """ON CONFLICT (`unique`) DO UPDATE SET each of `update` to the value that conflicted."""
    meta = model._meta
    return connection.ops.on_conflict_suffix_sql(
        fields,
        OnConflict.UPDATE,
        [meta.get_field(name).column for name in update],
        [meta.get_field(name).column for name in unique],
    )


def _column(field: Field) -> str:
    return connection.ops.quote_name(field.column)
