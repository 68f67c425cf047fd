"""Security: tables for refusal throttling."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0007_rollout_lifecycle")]

    operations = []
