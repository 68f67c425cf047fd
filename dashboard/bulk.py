"""Many rows written fast: a stage, published in one statement.

A `Stage` takes rows as they are ready into a table only this connection sees (SQLite's
temp database, PostgreSQL's pg_temp): it locks nothing other connections wait for.
`publish` then copies them into the real table with one INSERT … SELECT … ON CONFLICT, in
the caller's transaction, and `clear` empties the stage for the next rows.

The rows reach the stage the cheapest way each database takes them: on SQLite one short
INSERT the driver runs for every row; on PostgreSQL a binary COPY, whose rows psycopg
encodes in C. Any statement with the rows as parameters costs more on PostgreSQL: Django's
cursors bind on the client, so psycopg writes every value into the statement's text, in
Python (a multi-row VALUES of 500 rows is 13,500 placeholders; one array a column still
13 ms a batch of 500 servers, against 1.2 ms by COPY).
"""

from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError, connection
from django.db.models import Field, Model
from django.db.models.constants import OnConflict


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
        self._types: list[int] = []  # PostgreSQL: the stage's column types, for COPY
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
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT atttypid FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    [self.table],
                )
                self._types = [oid for (oid,) in cursor.fetchall()]
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
        except DatabaseError:
            if kind is None:
                raise
            # The error on its way says what went wrong; the stage goes with the transaction
            # being rolled back or the connection, or at the next `with` of its name.

    def add(self, rows: Sequence[tuple]) -> None:
        """Stage rows already in the database driver's types, in the columns' order."""
        if not rows:
            return
        with connection.cursor() as cursor:
            if self._types:
                copy_sql = f"COPY {self.table} ({self._columns}) FROM STDIN (FORMAT BINARY)"
                with cursor.copy(copy_sql) as copy:
                    copy.set_types(self._types)
                    for row in rows:
                        copy.write_row(row)
            else:
                # One short statement, prepared once and run for every row by the driver: a
                # multi-row VALUES list costs more to build, convert and parse than to run.
                one = ", ".join(["%s"] * len(self.fields))
                sql = f"INSERT INTO {self.table} ({self._columns}) VALUES ({one})"  # noqa: S608
                cursor.executemany(sql, rows)
        self.rows += len(rows)

    def clear(self) -> None:
        """Empty the stage (its rows published)."""
        with connection.cursor() as cursor:
            # TRUNCATE: PostgreSQL's DELETE would leave dead rows every later publish reads
            # past (nothing vacuums a temporary table); SQLite's has no WHERE to check.
            empty = "TRUNCATE" if self._types else "DELETE FROM"
            cursor.execute(f"{empty} {self.table}")
        self.rows = 0

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
