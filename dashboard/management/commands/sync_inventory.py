"""Sync the inventory from the cloud now, in this process."""

from django.core.management.base import BaseCommand, CommandError

from dashboard import inventory


class Command(BaseCommand):
    help = "Read groups, servers and images from the cloud into the database."

    def handle(self, **options) -> None:
        run = inventory.sync_now("command")
        if run.state == run.State.RUNNING:
            self.stdout.write(f"a sync is already running (#{run.pk}); it will finish on its own")
            return
        if run.state != run.State.SUCCEEDED:
            raise CommandError(f"sync #{run.pk} failed: {run.error}")
        self.stdout.write(
            f"sync #{run.pk}: {run.servers_seen} servers, {run.servers_gone} gone, "
            f"{run.api_calls} API calls"
        )
