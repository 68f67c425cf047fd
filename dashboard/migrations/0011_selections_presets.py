"""Stored selections and safety presets.

- Selection: the servers someone picked on the servers page (or the filter they came from),
  so a plan carries one id instead of one form field per server.
- Rollout.canary_signoff: hold the rollout once its canary wave is done, until resumed.
- Rollout.preset: the named safety preset the rollout was planned with.
- RolloutServer.to_image_name: the target image's name per server (per-group plans and
  reverts go to a different image per server).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0010_inventory_figures")]

    operations = [
        migrations.AddField(
            model_name="rollout",
            name="canary_signoff",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="rollout",
            name="preset",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name="rolloutserver",
            name="to_image_name",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.CreateModel(
            name="Selection",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_by", models.CharField(max_length=150)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("server_ids", models.JSONField(blank=True, default=list)),
                ("filter", models.CharField(blank=True, max_length=2000)),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["created_by", "-updated_at"], name="dashboard_s_created_97e20f_idx"
                    )
                ],
            },
        ),
    ]
