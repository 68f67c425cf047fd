"""bulk.Stage on the database the suite runs on: staged rows reach the real table only when
published, every value as it was staged (on PostgreSQL they travel by binary COPY), a
publish updates rows already there, a cleared stage publishes nothing again, and the stage
lives in the connection's temporary schema (a real table of the same name is never
touched)."""

from datetime import UTC, datetime

import pytest
from django.db import DatabaseError, connection, transaction

from dashboard import bulk, inventory, projects
from dashboard.cloud import records
from dashboard.models import Server, ServerImageSeen

pytestmark = pytest.mark.django_db

STAMP = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def rows(*names: str) -> list[tuple]:
    project = projects.default()
    as_stored = inventory._stored_time()
    servers = [records.Server(id=f"srv-{i}", name=n, image_id="img-1") for i, n in enumerate(names)]
    return [inventory._server_row(s, {}, project.pk, as_stored) for s in servers]


def publish(stage: bulk.Stage) -> None:
    columns = {name: name for name in inventory.SERVER_COLUMNS}
    stamp = inventory._stored_time()(STAMP)
    stage.publish(
        Server,
        {**columns, "synced_at": (stamp,)},
        unique=("id",),
        update=(*inventory.SERVER_COLUMNS[1:], "synced_at"),
    )


def test_staged_rows_reach_the_table_only_when_published_and_update_rows_there():
    with bulk.Stage(Server, inventory.SERVER_COLUMNS, "test") as stage:
        stage.add(rows("alpha", "beta"))
        assert not Server.objects.exists()
        publish(stage)
    assert dict(Server.objects.values_list("id", "name")) == {"srv-0": "alpha", "srv-1": "beta"}
    assert Server.objects.get(id="srv-0").synced_at == STAMP

    with bulk.Stage(Server, inventory.SERVER_COLUMNS, "test") as stage:  # the same name again
        stage.add(rows("alpha renamed"))
        publish(stage)
    assert dict(Server.objects.values_list("id", "name")) == {
        "srv-0": "alpha renamed",
        "srv-1": "beta",
    }


def test_every_staged_value_reaches_the_table_as_the_sync_reads_it_back():
    frozen = records.Server(
        id="srv-9",
        name="frozen one",
        group_id="",
        image_id="",
        status="FREEZE",
        session_count=7,
        frozen=True,
        system_disk_size=120,
        job_time=datetime(2026, 11, 30, 23, 59, 59, 125000, tzinfo=UTC),
        maintain_status=True,
        job_id="job-1",
        job_status="RUNNING",
        ip_addresses=("10.0.0.9", "10.0.0.10"),
    )
    staged = [*rows("alpha"), inventory._server_row(
        frozen, {}, projects.default().pk, inventory._stored_time()
    )]  # fmt: skip
    with bulk.Stage(Server, inventory.SERVER_COLUMNS, "test") as stage:
        stage.add(staged)
        publish(stage)
    stored = inventory._stored_servers(projects.default())
    assert {row[0]: tuple(row[1:]) for row in staged} == stored


def test_a_cleared_stage_publishes_only_what_was_staged_after():
    with bulk.Stage(Server, inventory.SERVER_COLUMNS, "test") as stage:
        stage.add(rows("alpha"))
        publish(stage)
        stage.clear()
        Server.objects.filter(id="srv-0").update(name="renamed meanwhile")
        publish(stage)  # nothing staged: the row is left as it is
        stage.add(rows("gamma", "delta")[1:])
        publish(stage)
    assert dict(Server.objects.values_list("id", "name")) == {
        "srv-0": "renamed meanwhile",
        "srv-1": "delta",
    }


def test_a_publish_picks_staged_columns_and_bound_values_where_asked():
    with bulk.Stage(Server, inventory.SERVER_COLUMNS, "test") as stage:
        stage.add(rows("alpha", "beta"))
        publish(stage)
        seen = {"server_id": "id", "image_id": "image_id"}
        stamp = inventory._stored_time()(STAMP)
        stage.publish(
            ServerImageSeen,
            seen | {"first_seen": (stamp,), "last_seen": (stamp,)},
            unique=("server_id", "image_id"),
            update=("last_seen",),
            where=f"{connection.ops.quote_name('name')} = 'beta'",
        )
    assert list(ServerImageSeen.objects.values_list("server_id", "image_id", "first_seen")) == [
        ("srv-1", "img-1", STAMP)
    ]


def test_a_database_error_inside_the_stage_is_the_error_raised():
    """On PostgreSQL the failed statement aborts the transaction, and dropping the stage on
    the way out fails too: that second error must not hide the first."""
    stage = bulk.Stage(Server, inventory.SERVER_COLUMNS, "test")
    with pytest.raises(DatabaseError) as raised, transaction.atomic(), stage:
        stage.add(rows("alpha"))
        with connection.cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM dashboard_server")
    assert "no_such_column" in str(raised.value)


def test_the_stage_is_the_connections_own_and_leaves_a_real_table_of_its_name_alone():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE stage_test (id varchar(10))")
        cursor.execute("INSERT INTO stage_test VALUES ('kept')")
    with bulk.Stage(Server, inventory.SERVER_COLUMNS, "test") as stage:
        stage.add(rows("alpha"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM stage_test")
        assert cursor.fetchall() == [("kept",)]
        cursor.execute("DROP TABLE stage_test")
