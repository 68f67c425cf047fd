"""`manage.py flush`, which also empties the append-only audit table.

Flushing wipes every table on purpose (and Django's TransactionTestCase flushes after each
test). The audit table's guard triggers (migration 0002) would refuse that, so this command
lifts them for the flush and puts them back afterwards, whatever happens.
"""

from importlib import import_module

from django.core.management.commands import flush
from django.db import connections

_guard = import_module("dashboard.migrations.0002_audit_append_only")


class Command(flush.Command):
    def handle(self, **options) -> None:
        connection = connections[options["database"]]
        guarded = "dashboard_auditevent" in connection.introspection.table_names()
        if guarded:
            _guard.remove(connection)
        try:
            super().handle(**options)
        finally:
            if guarded:
                _guard.install(connection)
