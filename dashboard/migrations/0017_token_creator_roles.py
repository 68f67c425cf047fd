"""A person's roles as the SSO last showed them (SeenRoles), so a service token never acts with
more than its creator's; and why the dashboard revoked a token by itself (revoked_reason).
Existing tokens keep working until their creator is next seen."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0016_redundant_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="SeenRoles",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("username", models.CharField(max_length=150, unique=True)),
                ("groups", models.JSONField(blank=True, default=list)),
                ("roles", models.JSONField(blank=True, default=list)),
                ("project_roles", models.JSONField(blank=True, default=dict)),
                ("signature", models.CharField(max_length=64)),
                ("recorded_at", models.DateTimeField()),
            ],
            options={
                "verbose_name_plural": "seen roles",
            },
        ),
        migrations.AddField(
            model_name="servicetoken",
            name="revoked_reason",
            field=models.CharField(blank=True, max_length=32),
        ),
    ]
