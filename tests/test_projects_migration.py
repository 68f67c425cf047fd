"""Migration 0014 moves a single-project database into the default project without loss."""

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from dashboard.models import Image, Project

BEFORE = [("dashboard", "0013_api")]
AFTER = [("dashboard", "0014_projects")]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_a_single_project_database_moves_into_the_default_project(settings):
    settings.CLOUD_PROJECTS = ()
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, "REGION": "ap-southeast-1"}
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("dashboard")
    try:
        executor.migrate(BEFORE)
        old = executor.loader.project_state(BEFORE).apps
        group = old.get_model("dashboard", "ServerGroup").objects.create(
            id="g-1", name="Finance", image_id="img-new", synced_at=NOW
        )
        old.get_model("dashboard", "Server").objects.create(
            id="s-1", name="fin-01", group=group, image_id="img-old", synced_at=NOW
        )
        Image = old.get_model("dashboard", "Image")
        Image.objects.create(id="img-old", name="Old", synced_at=NOW, gone=True)
        Image.objects.create(id="img-new", name="New", synced_at=NOW, os_type="Windows")
        old.get_model("dashboard", "SyncRun").objects.create(state="succeeded")
        old.get_model("dashboard", "InventoryFigures").objects.update_or_create(
            pk=1, defaults={"servers": 1, "groups": 1}
        )
        rollout = old.get_model("dashboard", "Rollout").objects.create(
            created_by="otto", state="succeeded", target_image_id="img-new"
        )

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps
        [project] = new.get_model("dashboard", "Project").objects.all()
        assert (project.name, project.region) == ("ap-southeast-1", "ap-southeast-1")
        for model in ("ServerGroup", "Server", "SyncRun", "Rollout", "InventoryFigures"):
            rows = new.get_model("dashboard", model).objects.all()
            assert [r.project_id for r in rows] == [project.pk], model
        images = new.get_model("dashboard", "Image").objects.order_by("id")
        assert [(i.id, i.name, i.gone, i.os_type, i.project_id) for i in images] == [
            ("img-new", "New", False, "Windows", project.pk),
            ("img-old", "Old", True, "", project.pk),
        ]
        assert new.get_model("dashboard", "Rollout").objects.get(pk=rollout.pk).created_by == "otto"
    finally:
        MigrationExecutor(connection).migrate(latest)


@pytest.mark.django_db
def test_the_same_image_id_is_stored_once_per_project():
    """A public image has one id in every project of a region: one row each, never two."""
    a = Project.objects.create(name="a", region="cn-north-4")
    b = Project.objects.create(name="b", region="cn-north-4")
    Image.objects.create(project=a, id="public-img", name="Windows", synced_at=NOW)
    Image.objects.create(project=b, id="public-img", name="Windows", synced_at=NOW)
    assert Image.objects.filter(id="public-img").count() == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        Image.objects.create(project=a, id="public-img", name="again", synced_at=NOW)
