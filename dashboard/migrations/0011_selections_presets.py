"""Stored selections and safety presets."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0010_inventory_figures")]

    operations = []
