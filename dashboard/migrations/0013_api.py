"""Service tokens and idempotency keys for the automation API."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0012_rollout_sending")]

    operations = []
