"""`manage.py cloudcheck`: the connection check in a terminal; exit 0 only when all works."""

import sys

from django.core.management.base import BaseCommand

from dashboard.cloud.check import Report, run_check


class Command(BaseCommand):
    help = "Check the cloud settings, credentials and permissions with read-only probes."

    def handle(self, *args, **options) -> None:
        report = run_check()
        self.stdout.write(render(report))
        if not report.ok:
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
