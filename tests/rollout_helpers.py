"""Helpers the rollout tests share: confirming a plan the way a browser does, and the servers
of a synced fleet that may move to one image."""

from django.test import Client

from dashboard.models import Image, Rollout, Server
from dashboard.rollouts import planning
from dashboard.rollouts.facts import verdicts


def movable(at_least: int) -> tuple[Image, list[Server]]:
    """The image most servers may move to, and those servers by group then name."""
    images = planning.image_map()
    servers = list(Server.objects.filter(gone=False).select_related("group"))
    best: tuple[Image | None, list[Server]] = (None, [])
    for target in Image.objects.filter(gone=False):
        judged = verdicts(servers, target, images, set())
        ok = [s for s in servers if judged[s.id].ok]
        if len(ok) > len(best[1]):
            best = (target, ok)
    target, ok = best
    assert target is not None and len(ok) >= at_least, "the test fleet is too small"
    ok.sort(key=lambda s: (s.group.name if s.group else "", s.name, s.id))
    return target, ok


def confirm_from_page(client: Client, rollout: Rollout):
    """Open the plan page, then post its Confirm form with the token the page carries."""
    page = client.get(f"/rollouts/new/{rollout.pk}/")
    token = page.context["confirm_token"] if page.status_code == 200 else ""
    return client.post(f"/rollouts/new/{rollout.pk}/confirm/", {"confirm_token": token})
