"""Sending marks and send attempts on rollout rows.

A row is now `submitting` while its worker re-reads the server (nothing sent yet: a crash
there puts it back to pending) and `sending` only while its batch-change-image call is in
flight. Rows left `submitting` by the old code may have been sent, so they become `sending`
and are reconciled, never resent. `send_attempts` counts the calls that carried a server.
A rollout remembers since when the cloud has failed its ticks, and how long the cloud took to
show an accepted job (the reconcile grace adapts to it).
"""

from django.db import migrations, models

ACTIVE = ["pending", "submitting", "sending", "unknown", "waiting", "running"]


def submitting_may_have_been_sent(apps, schema_editor) -> None:
    rows = apps.get_model("dashboard", "RolloutServer").objects.filter(state="submitting")
    rows.update(state="sending")


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0011_selections_presets")]

    operations = [
        migrations.AddField(
            model_name="rollout",
            name="cloud_error",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name="rollout",
            name="cloud_unreachable_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="rollout",
            name="job_visible_seconds",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.RemoveConstraint(
            model_name="rolloutserver",
            name="one_active_rollout_per_server",
        ),
        migrations.AddField(
            model_name="rolloutserver",
            name="send_attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="rolloutserver",
            name="state",
            field=models.CharField(
                choices=[
                    ("planned", "Planned"),
                    ("pending", "Pending"),
                    ("submitting", "Submitting"),
                    ("sending", "Sending"),
                    ("unknown", "Unknown"),
                    ("waiting", "Waiting"),
                    ("running", "Running"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("skipped", "Skipped"),
                    ("cancelled", "Cancelled"),
                ],
                default="planned",
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="rolloutserver",
            constraint=models.UniqueConstraint(
                condition=models.Q(("state__in", ACTIVE)),
                fields=("server_id",),
                name="one_active_rollout_per_server",
            ),
        ),
        migrations.RunPython(submitting_may_have_been_sent, migrations.RunPython.noop),
    ]
