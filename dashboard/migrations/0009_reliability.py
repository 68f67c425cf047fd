"""Reliability: worker heartbeats that carry the interval, a clean stop and the last cloud
contact; the shared per-second counters of the cloud rate limiter."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0008_security")]

    operations = [
        migrations.CreateModel(
            name="CloudRateWindow",
            fields=[
                ("key", models.CharField(max_length=96, primary_key=True, serialize=False)),
                ("count", models.PositiveIntegerField(default=0)),
                ("expires_at", models.DateTimeField(db_index=True)),
            ],
        ),
        migrations.AlterModelOptions(
            name="workerheartbeat",
            options={"ordering": ["-beat_at"]},
        ),
        migrations.AddField(
            model_name="workerheartbeat",
            name="cloud_error",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name="workerheartbeat",
            name="cloud_failed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="workerheartbeat",
            name="cloud_ok_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="workerheartbeat",
            name="cloud_unreachable_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="workerheartbeat",
            name="interval_seconds",
            field=models.FloatField(default=5.0),
        ),
        migrations.AddField(
            model_name="workerheartbeat",
            name="stopped_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
