"""Make dashboard_auditevent append-only in the database itself.

The model already refuses save-after-create and delete, but QuerySet.update()/.delete() and raw
SQL bypass the model. These triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) for
everyone but a DDL-capable owner who drops them on purpose.

SQLite drops a table's triggers when Django rebuilds the table (any later AlterField on
AuditEvent): such a migration must call `install` again. tests/test_audit.py fails if the
triggers are gone.
"""

from django.db import migrations

REFUSED = "dashboard_auditevent is append-only"

SQLITE_INSTALL = [
    "CREATE TRIGGER IF NOT EXISTS dashboard_auditevent_no_update "
    "BEFORE UPDATE ON dashboard_auditevent "
    f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END",
    "CREATE TRIGGER IF NOT EXISTS dashboard_auditevent_no_delete "
    "BEFORE DELETE ON dashboard_auditevent "
    f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END",
]
SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS dashboard_auditevent_no_update",
    "DROP TRIGGER IF EXISTS dashboard_auditevent_no_delete",
]

POSTGRESQL_INSTALL = [
    # restrict_violation (23001) surfaces as IntegrityError, like SQLite's RAISE(ABORT).
    "CREATE OR REPLACE FUNCTION dashboard_auditevent_refuse() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    f"RAISE EXCEPTION '{REFUSED} (% refused)', TG_OP USING ERRCODE = 'restrict_violation'; "
    "END $$",
    "DROP TRIGGER IF EXISTS dashboard_auditevent_no_change ON dashboard_auditevent",
    "CREATE TRIGGER dashboard_auditevent_no_change "
    "BEFORE UPDATE OR DELETE ON dashboard_auditevent "
    "FOR EACH ROW EXECUTE FUNCTION dashboard_auditevent_refuse()",
    "DROP TRIGGER IF EXISTS dashboard_auditevent_no_truncate ON dashboard_auditevent",
    "CREATE TRIGGER dashboard_auditevent_no_truncate "
    "BEFORE TRUNCATE ON dashboard_auditevent "
    "FOR EACH STATEMENT EXECUTE FUNCTION dashboard_auditevent_refuse()",
]
POSTGRESQL_REMOVE = [
    "DROP TRIGGER IF EXISTS dashboard_auditevent_no_change ON dashboard_auditevent",
    "DROP TRIGGER IF EXISTS dashboard_auditevent_no_truncate ON dashboard_auditevent",
    "DROP FUNCTION IF EXISTS dashboard_auditevent_refuse()",
]

STATEMENTS = {
    "sqlite": (SQLITE_INSTALL, SQLITE_REMOVE),
    "postgresql": (POSTGRESQL_INSTALL, POSTGRESQL_REMOVE),
}


def _run(connection, statements):
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)  # no params: "%" in the PL/pgSQL body is not a placeholder


def install(connection):
    """Create the guard triggers on `connection` (idempotent)."""
    if connection.vendor not in STATEMENTS:
        raise RuntimeError(f"No append-only audit triggers for {connection.vendor}.")
    _run(connection, STATEMENTS[connection.vendor][0])


def remove(connection):
    """Drop the guard triggers on `connection` (idempotent)."""
    if connection.vendor not in STATEMENTS:
        raise RuntimeError(f"No append-only audit triggers for {connection.vendor}.")
    _run(connection, STATEMENTS[connection.vendor][1])


def forwards(apps, schema_editor):
    install(schema_editor.connection)


def backwards(apps, schema_editor):
    remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
