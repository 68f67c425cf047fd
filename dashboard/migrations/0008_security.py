"""Security: per-source refusal counters, so refusals cannot flood the append-only audit table
(one shared counter per source and minute, whichever web process answers)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0007_rollout_lifecycle")]

    operations = [
        migrations.CreateModel(
            name="RefusalWindow",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("source", models.CharField(max_length=128)),
                ("window_start", models.DateTimeField()),
                ("recorded", models.PositiveIntegerField(default=0)),
                ("suppressed", models.PositiveIntegerField(default=0)),
                ("summarized", models.BooleanField(default=False)),
            ],
            options={
                "indexes": [models.Index(fields=["window_start"], name="refusal_window_start")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("source", "window_start"), name="one_refusal_window"
                    )
                ],
            },
        ),
    ]
