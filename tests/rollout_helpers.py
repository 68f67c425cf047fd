"""Helpers the rollout tests share: confirming a plan the way a browser does."""

from django.test import Client

from dashboard.models import Rollout


def confirm_from_page(client: Client, rollout: Rollout):
    """Open the plan page, then post its Confirm form with the token the page carries."""
    page = client.get(f"/rollouts/new/{rollout.pk}/")
    token = page.context["confirm_token"] if page.status_code == 200 else ""
    return client.post(f"/rollouts/new/{rollout.pk}/confirm/", {"confirm_token": token})
