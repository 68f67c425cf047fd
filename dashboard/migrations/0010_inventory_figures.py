"""Inventory figures kept by the sync."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0009_reliability")]

    operations = []
