"""Rollout lifecycle: a timeline of events, the kind of each rollout, a `cancelling` state in
place of the `cancel_requested` flag, and a `stopped` state for waves of a paused rollout.

Existing rows: kind "change" becomes "plan", or "retry" when it names the rollout it came
from; "revert" stays. A rollout whose cancel was requested while jobs were in flight becomes
`cancelling`.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def forward(apps, schema_editor) -> None:
    Rollout = apps.get_model("dashboard", "Rollout")
    Rollout.objects.filter(kind="change", retry_of__isnull=False).update(kind="retry")
    Rollout.objects.filter(kind="change").update(kind="plan")
    Rollout.objects.filter(
        cancel_requested=True, state__in=["running", "paused", "halted"]
    ).update(state="cancelling")


def backward(apps, schema_editor) -> None:
    Rollout = apps.get_model("dashboard", "Rollout")
    Rollout.objects.filter(state="cancelling").update(state="running", cancel_requested=True)
    Rollout.objects.exclude(kind="revert").update(kind="change")


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0006_wave_session_policy")]

    operations = [
        migrations.AlterField(
            model_name="rollout",
            name="kind",
            field=models.CharField(
                choices=[
                    ("plan", "plan"),
                    ("retry", "retry"),
                    ("revert", "revert"),
                    ("resume_retry", "retry on resume"),
                ],
                default="plan",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="rollout",
            name="state",
            field=models.CharField(
                choices=[
                    ("planned", "Planned"),
                    ("awaiting_approval", "Awaiting Approval"),
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
        migrations.RunPython(forward, backward),
        migrations.RemoveField(model_name="rollout", name="cancel_requested"),
        migrations.AlterField(
            model_name="rollout",
            name="retry_of",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="derived",
                to="dashboard.rollout",
            ),
        ),
        migrations.AlterField(
            model_name="rolloutwave",
            name="state",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("draining", "Draining"),
                    ("logging_off", "Logging Off"),
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
        migrations.CreateModel(
            name="RolloutEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("wave", models.PositiveIntegerField(blank=True, null=True)),
                ("action", models.CharField(max_length=32)),
                ("from_state", models.CharField(max_length=24)),
                ("to_state", models.CharField(max_length=24)),
                ("actor", models.CharField(blank=True, max_length=150)),
                ("at", models.DateTimeField(default=django.utils.timezone.now)),
                ("reason", models.CharField(blank=True, max_length=500)),
                ("details", models.JSONField(blank=True, default=dict)),
                (
                    "rollout",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="dashboard.rollout",
                    ),
                ),
            ],
            options={
                "ordering": ["-at", "-id"],
                "indexes": [
                    models.Index(fields=["rollout", "-at"], name="dashboard_r_rollout_4adb1b_idx")
                ],
            },
        ),
    ]
