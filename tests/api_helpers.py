"""What the API tests share: service tokens of each role, and a client that sends one."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.api import tokens
from dashboard.models import Image, Rollout, RolloutServer, Server, ServerGroup

API = "/api/v1"


def bearer(secret: str) -> Client:
    """A client that calls the API with this token (and nothing else: no SSO headers)."""
    return Client(headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def make_token(db) -> Callable[..., tuple[Client, tokens.Issued]]:
    """`make_token("deploy-bot", "operator")` → (a client sending it, the issued token)."""

    def make(
        name: str, role: str, *, days: int = 30, created_by: str = "ada.admin"
    ) -> tuple[Client, tokens.Issued]:
        issued = tokens.issue(
            name=name,
            role=role,
            expires_at=timezone.now() + timedelta(days=days),
            created_by=created_by,
        )
        return bearer(issued.secret), issued

    return make


@pytest.fixture
def operator_token(make_token) -> Client:
    return make_token("deploy-bot", "operator")[0]


@pytest.fixture
def viewer_token(make_token) -> Client:
    return make_token("report-bot", "viewer")[0]


@pytest.fixture
def approver_token(make_token) -> Client:
    return make_token("release-bot", "approver")[0]


@pytest.fixture
def small_fleet(db) -> dict:
    """One group of two servers on an old image, with a newer compatible image to go to."""
    now = timezone.now()
    old = Image.objects.create(
        id="img-old", name="Win 2022 v6", os_type="Windows", status="active", synced_at=now
    )
    new = Image.objects.create(
        id="img-new", name="Win 2022 v7", os_type="Windows", status="active", synced_at=now
    )
    group = ServerGroup.objects.create(
        id="sg-1", name="Finance desktops", image_id=new.id, os_type="Windows", synced_at=now
    )
    servers = [
        Server.objects.create(
            id=f"srv-{n}",
            name=f"fin-0{n}",
            group=group,
            image_id=old.id,
            os_type="Windows",
            status="REGISTERED",
            drift=True,
            synced_at=now,
        )
        for n in (1, 2)
    ]
    return {"group": group, "old": old, "new": new, "servers": servers}


def plan_body(**overrides) -> dict:
    body = {
        "group": "sg-1",
        "target_image": "img-new",
        "reason": "CHG-1 patches",
        "preset": "custom",
    }
    return {**body, **overrides}


def running_rollout(created_by: str = "someone.else", state: str = "running") -> Rollout:
    """A rollout in `state` with one server, made directly (for the actions' tests)."""
    rollout = Rollout.objects.create(created_by=created_by, target_image_id="img-new", state=state)
    RolloutServer.objects.create(
        rollout=rollout,
        server_id="srv-1",
        server_name="fin-01",
        to_image_id="img-new",
        verdict=RolloutServer.Verdict.CHANGE,
        state=RolloutServer.State.PENDING if state in Rollout.ACTIVE_STATES else "succeeded",
    )
    return rollout
