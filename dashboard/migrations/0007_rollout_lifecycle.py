"""Rollout lifecycle: events, kinds, plan expiry."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0006_wave_session_policy")]

    operations = []
