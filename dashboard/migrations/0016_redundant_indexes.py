"""Drop two indexes another index already serves: server.group (by (group, drift)) and
serverimageseen.server (by the (server, image_id) constraint). Each cost every sync's writes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0015_project_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="server",
            name="group",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="servers",
                to="dashboard.servergroup",
            ),
        ),
        migrations.AlterField(
            model_name="serverimageseen",
            name="server",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="images_seen",
                to="dashboard.server",
            ),
        ),
    ]
