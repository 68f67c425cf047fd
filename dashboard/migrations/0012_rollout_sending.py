"""Sending marks and send attempts on rollout rows."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0011_selections_presets")]

    operations = []
