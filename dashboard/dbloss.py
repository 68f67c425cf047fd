"""Telling a lost database connection from a failure of the work itself.

A task cut off from its database (a failover, `pg_terminate_backend`, a restart) is put back
by the worker and run again; the work must then neither record itself as failed nor give up.
"""

from django.db import InterfaceError, OperationalError


def lost_database(exc: BaseException | None) -> bool:
    """Did `exc` (or what caused it) come from a broken or refused database connection?"""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OperationalError | InterfaceError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
