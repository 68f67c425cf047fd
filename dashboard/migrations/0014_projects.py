"""Several projects: every group, server, image, sync run and rollout belongs to one project.

Existing data moves into the default project, the first one configured (with the
single-project variables: the one named after HUAWEICLOUD_REGION), so nothing is lost.
Images get a surrogate key: the same public image has one id in every project of a region.
Their table is rebuilt (copied row by row) rather than altered, which both databases do alike.
"""

import django.db.models.deletion
from django.conf import settings
from django.core.management.color import no_style
from django.db import migrations, models
from django.db.models import Q

import dashboard.models

IMAGE_FIELDS = (
    "id",
    "name",
    "image_type",
    "os_type",
    "os_version",
    "architecture",
    "status",
    "min_disk",
    "paid",
    "product_code",
    "created_at",
    "gone",
    "synced_at",
)
OWNED = ("servergroup", "server", "syncrun", "rollout", "inventoryfigures")


def _default_project():
    configured = getattr(settings, "CLOUD_PROJECTS", ())
    if configured:
        first = configured[0]
        return first.name, first.region, first.label, first.project_id
    cloud = settings.HUAWEICLOUD
    return cloud["REGION"], cloud["REGION"], "", cloud["PROJECT_ID"]


def move_into_default_project(apps, schema_editor):
    Project = apps.get_model("dashboard", "Project")
    name, region, label, cloud_id = _default_project()
    project, _ = Project.objects.get_or_create(
        name=name, defaults={"region": region, "label": label, "cloud_project_id": cloud_id}
    )
    for model in OWNED:
        apps.get_model("dashboard", model).objects.filter(project__isnull=True).update(
            project=project
        )
    Old, New = apps.get_model("dashboard", "Image"), apps.get_model("dashboard", "ProjectImage")
    batch = []
    for values in Old.objects.values(*IMAGE_FIELDS).iterator(chunk_size=2000):
        batch.append(New(project=project, **values))
        if len(batch) >= 2000:
            New.objects.bulk_create(batch)
            batch = []
    New.objects.bulk_create(batch)


def count_figures_rows_on(apps, schema_editor):
    """Migration 0010 wrote the figures row with an explicit id 1, which PostgreSQL's sequence
    never saw: the next project's row would take id 1 again. Move the sequence past it."""
    figures = apps.get_model("dashboard", "InventoryFigures")
    for sql in schema_editor.connection.ops.sequence_reset_sql(no_style(), [figures]):
        schema_editor.execute(sql)


def back_to_one_project(apps, schema_editor):
    Old, New = apps.get_model("dashboard", "Image"), apps.get_model("dashboard", "ProjectImage")
    seen = set()
    for values in New.objects.order_by("row").values(*IMAGE_FIELDS).iterator(chunk_size=2000):
        if values["id"] not in seen:
            seen.add(values["id"])
            Old.objects.create(**values)


def _project_fk(related_name, *, null=False, default=False):
    extra = {"default": dashboard.models.default_project_id} if default else {}
    return models.ForeignKey(
        null=null,
        blank=null,
        on_delete=django.db.models.deletion.PROTECT,
        related_name=related_name,
        to="dashboard.project",
        **extra,
    )


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0013_api")]

    operations = [
        migrations.CreateModel(
            name="Project",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.SlugField(max_length=63, unique=True)),
                ("region", models.CharField(max_length=64)),
                ("label", models.CharField(blank=True, max_length=255)),
                ("cloud_project_id", models.CharField(blank=True, max_length=64)),
                ("configured", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"ordering": ["name"]},
        ),
        migrations.AddField("servergroup", "project", _project_fk("groups", null=True)),
        migrations.AddField("server", "project", _project_fk("servers", null=True)),
        migrations.AddField("syncrun", "project", _project_fk("sync_runs", null=True)),
        migrations.AddField("rollout", "project", _project_fk("rollouts", null=True)),
        migrations.AddField(
            "rollout",
            "plan_set",
            models.CharField(blank=True, db_index=True, max_length=32),
        ),
        migrations.AddField(
            "inventoryfigures",
            "project",
            models.OneToOneField(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="figures",
                to="dashboard.project",
            ),
        ),
        migrations.AddField("auditevent", "project", _project_fk("audit_events", null=True)),
        migrations.AddField("servicetoken", "project", _project_fk("tokens", null=True)),
        migrations.CreateModel(
            name="ProjectImage",
            fields=[
                ("row", models.BigAutoField(primary_key=True, serialize=False)),
                ("id", models.CharField(max_length=128)),
                ("name", models.CharField(max_length=255)),
                (
                    "image_type",
                    models.CharField(
                        choices=[
                            ("private", "Private"),
                            ("shared", "Shared"),
                            ("public", "Public"),
                            ("marketplace", "Marketplace"),
                            ("other", "Other"),
                        ],
                        default="private",
                        max_length=16,
                    ),
                ),
                ("os_type", models.CharField(blank=True, max_length=16)),
                ("os_version", models.CharField(blank=True, max_length=255)),
                ("architecture", models.CharField(blank=True, max_length=8)),
                ("status", models.CharField(blank=True, max_length=16)),
                ("min_disk", models.PositiveIntegerField(default=0)),
                ("paid", models.BooleanField(default=False)),
                ("product_code", models.CharField(blank=True, max_length=128)),
                ("created_at", models.DateTimeField(blank=True, null=True)),
                ("gone", models.BooleanField(default=False)),
                ("synced_at", models.DateTimeField()),
                ("project", _project_fk("images", default=True)),
            ],
            options={"ordering": ["name"]},
        ),
        migrations.RunPython(move_into_default_project, back_to_one_project),
        migrations.RunPython(count_figures_rows_on, migrations.RunPython.noop),
        migrations.DeleteModel(name="Image"),
        migrations.RenameModel("ProjectImage", "Image"),
        migrations.AddConstraint(
            "image",
            models.UniqueConstraint(fields=("project", "id"), name="one_image_row_per_project"),
        ),
        migrations.AlterField("servergroup", "project", _project_fk("groups", default=True)),
        migrations.AlterField("server", "project", _project_fk("servers", default=True)),
        migrations.AlterField("syncrun", "project", _project_fk("sync_runs", default=True)),
        migrations.AlterField("rollout", "project", _project_fk("rollouts", default=True)),
        migrations.AlterField(
            "inventoryfigures",
            "project",
            models.OneToOneField(
                default=dashboard.models.default_project_id,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="figures",
                to="dashboard.project",
            ),
        ),
        migrations.RemoveConstraint("syncrun", "one_running_sync"),
        migrations.AddConstraint(
            "syncrun",
            models.UniqueConstraint(
                condition=Q(state="running"),
                fields=("project", "state"),
                name="one_running_sync_per_project",
            ),
        ),
    ]
