"""Inventory figures kept by the sync.

- Per-group counts of live servers (live, drifted, in maintenance, busy, sessions) on
  ServerGroup and fleet totals in a one-row InventoryFigures table, written by the sync with
  its snapshot so the overview and groups pages read them instead of recounting servers.
  They are filled from the servers already stored, so pages are right before the next sync.
- A partial index on live servers by (name, id) for the servers page's keyset paging.
- Server.search_text (name, machine name and addresses, lowercased), filled for the servers
  already stored; on PostgreSQL a trigram index on it (pg_trgm), so a search finds its rows
  without reading every server. Where the extension cannot be created the search still
  works, reading every live server.
"""

import logging

from django.db import DatabaseError, migrations, models, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

log = logging.getLogger(__name__)

BUSY = ["WAITING", "RUNNING"]
TRIGRAM_INDEX = "server_search_trgm"


def fill_figures(apps, schema_editor):
    Server = apps.get_model("dashboard", "Server")
    ServerGroup = apps.get_model("dashboard", "ServerGroup")
    InventoryFigures = apps.get_model("dashboard", "InventoryFigures")
    figures = dict(
        servers=Count("id"),
        servers_drifted=Count("id", filter=Q(drift=True)),
        servers_in_maintenance=Count("id", filter=Q(maintain_status=True)),
        servers_busy=Count("id", filter=Q(job_status__in=BUSY)),
        sessions=Sum("session_count"),
    )
    live = Server.objects.filter(gone=False)
    for row in live.values("group_id").annotate(**figures):
        if row["group_id"] is None:
            continue
        ServerGroup.objects.filter(pk=row["group_id"]).update(
            servers_live=row["servers"],
            servers_drifted=row["servers_drifted"],
            servers_in_maintenance=row["servers_in_maintenance"],
            servers_busy=row["servers_busy"],
            sessions=row["sessions"] or 0,
        )
    totals = live.aggregate(**figures)
    InventoryFigures.objects.update_or_create(
        pk=1,
        defaults={
            **totals,
            "sessions": totals["sessions"] or 0,
            "groups": ServerGroup.objects.filter(gone=False).count(),
            "updated_at": timezone.now(),
        },
    )


def fill_search_text(apps, schema_editor):
    Server = apps.get_model("dashboard", "Server")
    batch = []
    for server in Server.objects.only("id", "name", "machine_name", "ip_addresses").iterator(
        chunk_size=2000
    ):
        fields = (server.name, server.machine_name, server.ip_addresses)
        server.search_text = "\n".join(fields).lower()
        batch.append(server)
        if len(batch) == 2000:
            Server.objects.bulk_update(batch, ["search_text"])
            batch = []
    Server.objects.bulk_update(batch, ["search_text"])


def add_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {TRIGRAM_INDEX} ON dashboard_server "
                "USING gin (search_text gin_trgm_ops) WHERE NOT gone"
            )
    except DatabaseError as error:
        log.warning("no trigram index for the server search (%s); searches scan", error)


def drop_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}")


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0009_reliability")]

    operations = [
        migrations.CreateModel(
            name="InventoryFigures",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("servers", models.PositiveIntegerField(default=0)),
                ("servers_drifted", models.PositiveIntegerField(default=0)),
                ("servers_in_maintenance", models.PositiveIntegerField(default=0)),
                ("servers_busy", models.PositiveIntegerField(default=0)),
                ("sessions", models.PositiveIntegerField(default=0)),
                ("groups", models.PositiveIntegerField(default=0)),
                ("updated_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.AddField(
            model_name="servergroup",
            name="servers_busy",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="servergroup",
            name="servers_drifted",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="servergroup",
            name="servers_in_maintenance",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="servergroup",
            name="servers_live",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="servergroup",
            name="sessions",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddIndex(
            model_name="server",
            index=models.Index(
                condition=models.Q(("gone", False)),
                fields=["name", "id"],
                name="server_live_by_name",
            ),
        ),
        migrations.AddField(
            model_name="server",
            name="search_text",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.RunPython(fill_figures, migrations.RunPython.noop),
        migrations.RunPython(fill_search_text, migrations.RunPython.noop),
        migrations.RunPython(add_trigram_index, drop_trigram_index),
    ]
