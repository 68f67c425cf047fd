"""Write many rollout rows, each with values of its own, in one UPDATE.

Sending (send.py) and tracking (refresh.py) decide a new state and values for many rows at
once; writing them one statement per row, or per distinct set of values, made their SQL grow
with the rows (a failed job's own message, a row's own job id). Here every column whose values
differ becomes one CASE, so the statements stay the same for ten rows or a thousand.
"""

from collections import defaultdict
from collections.abc import Iterator
from functools import reduce
from operator import or_

from django.db import connection
from django.db.models import Expression, F, Field, Q, Value

from dashboard.models import RolloutServer

Moved = tuple[RolloutServer, dict]


def write_rows(moved: list[Moved], *, within: Q | None = None) -> int:
    """Write every row's columns in one UPDATE (more only past the database's limit of bound
    parameters), however many rows and however their values differ. Returns the rows written.

    Still conditional, row by row: a row is written only while it is in the state its caller
    read (`row.state`) and matches `within` (a claim, say), so a cancel or another worker that
    changed it meanwhile is not overwritten. The update goes through TouchingQuerySet, so every
    written row's updated_at moves.
    """
    written = 0
    for batch in _batches(moved):
        read: dict[str, list[int]] = defaultdict(list)
        for row, _update in batch:
            read[row.state].append(row.pk)
        still = reduce(or_, (Q(state=state, pk__in=pks) for state, pks in read.items()))
        columns = {name for _row, update in batch for name in update}
        written += RolloutServer.objects.filter(still, within or Q()).update(
            **{name: _column(name, batch) for name in sorted(columns)}
        )
    return written


def _column(name: str, batch: list[Moved]) -> Expression:
    """The value to SET one column to: a constant when every row writes the same, otherwise
    CASE WHEN pk IN (rows writing value 1) THEN value 1 … ELSE the column as it is."""
    field = RolloutServer._meta.get_field(name)
    by_value: dict = defaultdict(list)
    for row, update in batch:
        if name in update:
            by_value[update[name]].append(row.pk)
    if len(by_value) == 1 and len(next(iter(by_value.values()))) == len(batch):
        return Value(next(iter(by_value)), output_field=field)
    return _PerRow(name, by_value, field)


class _PerRow(Expression):
    """CASE WHEN pk IN (…) THEN value … ELSE the column END, written as SQL directly.

    The same SQL as Case(When(pk__in=…, then=Value(…)), …, default=F(name)), but that builds
    and resolves a filter per value: where every row has a value of its own (a job id, a
    message) it cost the ORM about ten times the database's time for the statement.
    """

    def __init__(self, name: str, by_value: dict, field: Field):
        super().__init__(output_field=field)
        self.by_value = by_value
        self.key, self.column = F("pk"), F(name)

    def get_source_expressions(self) -> list:
        return [self.key, self.column]

    def set_source_expressions(self, expressions: list) -> None:
        self.key, self.column = expressions

    def as_sql(self, compiler, connection) -> tuple[str, list]:
        key, key_params = compiler.compile(self.key)
        column, column_params = compiler.compile(self.column)
        whens, params = [], []
        for value, pks in self.by_value.items():
            whens.append(f"WHEN {key} IN ({', '.join(['%s'] * len(pks))}) THEN %s")
            params += [*key_params, *pks, self.output_field.get_db_prep_save(value, connection)]
        return f"CASE {' '.join(whens)} ELSE {column} END", [*params, *column_params]


def _batches(moved: list[Moved]) -> Iterator[list[Moved]]:
    """The rows in as few batches as the database's bound-parameter limit allows (one on
    PostgreSQL; SQLite's limit is 32,766 or more: over 1,500 rows of the widest update)."""
    limit = connection.features.max_query_params
    if limit is not None:
        limit -= 100  # the few parameters that do not depend on the rows (updated_at, …)
    batch: list[Moved] = []
    used = 0
    for row, update in moved:
        # Its pk in WHERE, and for each column at most its pk and its value in the CASE.
        needs = 1 + 2 * len(update)
        if batch and limit is not None and used + needs > limit:
            yield batch
            batch, used = [], 0
        batch.append((row, update))
        used += needs
    if batch:
        yield batch
