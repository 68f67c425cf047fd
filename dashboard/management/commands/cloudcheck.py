"""`manage.py cloudcheck`: the connection check in a terminal; exit 0 only when all works."""

import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from dashboard.cloud.check import Report, run_check
from dashboard.cloud.client import get_client
from dashboard.cloud.projects import configured


class Command(BaseCommand):
    help = (
        "Check the cloud settings, credentials and permissions with read-only probes: every "
        "configured project, or the one --project names. Exit 0 only when all are ready."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", default="", help="Check only this project (its name).")

    def handle(self, *args, project: str = "", **options) -> None:
        chosen = configured()
        if project:
            chosen = tuple(p for p in chosen if p.name == project)
            if not chosen:
                names = ", ".join(p.name for p in configured())
                raise CommandError(f"No project is called {project!r} (configured: {names}).")
        ready = True
        for config in chosen:
            if len(configured()) > 1:
                self.stdout.write(f"== project {config.name} ({config.region})\n")
            try:
                report = run_check(get_client(config))
            except (ImproperlyConfigured, ValueError) as error:  # no endpoint, no credentials
                self.stdout.write(f"PROBLEM         {error}\nNOT READY\n")
                ready = False
                continue
            self.stdout.write(render(report))
            ready = ready and report.ok
        if not ready:
            sys.exit(1)


def render(report: Report) -> str:
    """The report as plain text (no secret: keys, passwords and tokens are never in it)."""
    lines = [f"region        {report.region}"]
    lines += [f"{name + ' endpoint':<28}{url}" for name, url in report.endpoints.items()]
    lines.append(f"authentication  {report.auth_mode}")
    if report.project_id:
        lines.append(f"project         {report.project_id} ({report.project_source})")
    if report.token_expires_at:
        lines.append(f"token expires   {report.token_expires_at:%Y-%m-%d %H:%M:%S} UTC")
    skew = report.clock_skew
    if skew is not None:
        state = "OK" if report.clock_ok and not report.clock_warning else "WARN"
        state = state if report.clock_ok else "FAIL"
        lines.append(f"clock skew      {skew.total_seconds():+.1f} s [{state}] (limit 15 min)")
    if report.problem:
        lines.append(f"PROBLEM         {report.problem}")
    for probe in report.probes:
        mark = "ok " if probe.result == "ok" else ("-- " if probe.passed else "!! ")
        detail = f" — {probe.detail}" if probe.detail else ""
        lines.append(f"{mark}{probe.api:<32}{probe.label} [{probe.action or '—'}]{detail}")
    lines.append("READY" if report.ok else "NOT READY")
    return "\n".join(lines) + "\n"
