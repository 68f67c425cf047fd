"""Sync the inventory from the cloud now, in this process: every project, or one."""

from django.core.management.base import BaseCommand, CommandError

from dashboard import inventory, projects


class Command(BaseCommand):
    help = "Read groups, servers and images from the cloud into the database."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", default="", help="Sync only this project (its name).")

    def handle(self, *, project: str = "", **options) -> None:
        chosen = projects.rows()
        if project:
            chosen = [p for p in chosen if p.name == project]
            if not chosen:
                raise CommandError(f"No project is called {project!r}.")
        failed = []
        for row in chosen:
            run = inventory.sync_now("command", project=row)
            name = f"{row.name}: " if projects.several() else ""
            if run.state == run.State.RUNNING:
                self.stdout.write(
                    f"{name}a sync is already running (#{run.pk}); it will finish on its own"
                )
            elif run.state != run.State.SUCCEEDED:
                failed.append(f"{name}sync #{run.pk} failed: {run.error}")
            else:
                self.stdout.write(
                    f"{name}sync #{run.pk}: {run.servers_seen} servers, {run.servers_gone} gone, "
                    f"{run.api_calls} API calls"
                )
        if failed:
            raise CommandError("; ".join(failed))  # after the others were synced
