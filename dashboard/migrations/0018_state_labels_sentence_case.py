"""The state labels in sentence case, as every other state: "Awaiting approval", "Logging off"
(labels only: the stored values do not change)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0017_token_creator_roles"),
    ]

    operations = [
        migrations.AlterField(
            model_name="rollout",
            name="state",
            field=models.CharField(
                choices=[
                    ("planned", "Planned"),
                    ("awaiting_approval", "Awaiting approval"),
                    ("queued", "Queued"),
                    ("running", "Running"),
                    ("paused", "Paused"),
                    ("halted", "Halted"),
                    ("cancelling", "Cancelling"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                    ("discarded", "Discarded"),
                ],
                db_index=True,
                default="planned",
                max_length=24,
            ),
        ),
        migrations.AlterField(
            model_name="rolloutwave",
            name="state",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("draining", "Draining"),
                    ("logging_off", "Logging off"),
                    ("sending", "Sending"),
                    ("running", "Running"),
                    ("soaking", "Soaking"),
                    ("stopped", "Stopped"),
                    ("done", "Done"),
                    ("cancelled", "Cancelled"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
    ]
