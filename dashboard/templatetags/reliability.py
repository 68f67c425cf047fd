"""Template tags for the workers panel and the cloud banner (templates/inventory/workers.html,
templates/inventory/cloud_banner.html). Database reads only; nothing here calls the cloud."""

from django import template

from dashboard import heartbeat
from dashboard.upstream import CloudStatus

register = template.Library()


@register.simple_tag
def workers_now() -> list[heartbeat.WorkerView]:
    """Every worker seen in the last hour: live, stopped or dead, and the tasks it holds."""
    return heartbeat.workers()


@register.simple_tag
def cloud_now() -> CloudStatus:
    """The cloud as the live workers last saw it: `reachable`, `unreachable_since`, …"""
    return heartbeat.cloud()
