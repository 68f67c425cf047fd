"""Reliability: worker health, sending marks."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0008_security")]

    operations = []
