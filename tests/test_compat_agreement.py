"""The form, the plan, the worker's re-check and the simulator judge every pair alike.

The dashboard's three call compat.verdict(), each with facts from a different source: the
inventory rows (form and plan) and the API records (the worker, just before sending). The
simulator judges with its own rules (dashboard/simulator/rules.py, written from the API text,
not from compat), so a misreading of the API on either side shows up here instead of being
confirmed. Every (server, image) pair of the seeded fleet is checked.
"""

import pytest

from dashboard import compat, inventory
from dashboard.models import Image, Server
from dashboard.rollouts import planning
from dashboard.rollouts.facts import image_facts, server_facts, verdicts
from dashboard.simulator import rules

pytestmark = pytest.mark.django_db

# compat's reason → the simulator rule that says the same (in_other_rollout is the
# dashboard's alone: the cloud knows no rollouts).
SAME_REASON = {
    compat.SAME_IMAGE: rules.SAME_IMAGE,
    compat.SERVER_GONE: rules.SERVER_GONE,
    compat.SERVER_FROZEN: rules.FROZEN,
    compat.SERVER_BUSY: rules.BUSY,
    compat.IMAGE_UNKNOWN: rules.UNKNOWN_IMAGE,
    compat.IMAGE_NOT_ACTIVE: rules.NOT_READY,
    compat.OS_MISMATCH: rules.OTHER_OS,
    compat.OS_UNSUPPORTED: rules.UNSUPPORTED_OS,
    compat.ARCH_MISMATCH: rules.OTHER_ARCHITECTURE,
    compat.CURRENT_IMAGE_UNKNOWN: rules.CURRENT_UNKNOWN,
    compat.FREE_PAID_MISMATCH: rules.FREE_FOR_PAID,
    compat.PAID_PRODUCT_MISMATCH: rules.OTHER_PRODUCT,
    compat.MARKET_PRODUCT_MISSING: rules.NO_PRODUCT,
    compat.DISK_TOO_SMALL: rules.DISK_TOO_SMALL,
}


def test_every_server_and_image_pair_gets_the_same_verdict_everywhere(sim_settings, cloud_client):
    inventory.sync_now(client=cloud_client)
    sim = sim_settings.state
    now = sim.now()
    records = {s.id: s for s in cloud_client.list_servers()}
    images = planning.image_map()
    rows = list(Server.objects.select_related("group"))
    assert len(rows) == len(records) == len(sim.servers)

    compared = 0
    for image in Image.objects.all():
        plan = verdicts(rows, image, images, busy=set())
        for server in rows:
            record = records[server.id]
            worker = compat.verdict(
                server_facts(record, gone=False),
                image_facts(image),
                image_facts(images.get(record.image_id)),
            )
            cloud = sim.verdict(sim.servers[server.id], image.id, now)
            assert plan[server.id].action == worker.action == cloud.action, (
                server.name,
                image.name,
                plan[server.id],
                worker,
                cloud,
            )
            ours = {SAME_REASON[r.code] for r in plan[server.id].reasons}
            assert ours == {r.name for r in cloud.reasons}, (server.name, image.name)
            compared += 1
    assert compared == len(rows) * Image.objects.count()


def test_the_simulator_judges_without_the_dashboards_rules() -> None:
    import ast
    from pathlib import Path

    import dashboard.simulator as package

    for path in Path(package.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            getattr(node, "module", None) or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        names = {f"{m}.{a.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 for m in [node.module or ""] for a in node.names}  # fmt: skip
        assert not any("compat" in n for n in imported | names), path.name


def test_the_form_offers_exactly_the_images_the_plan_would_change_to(sim_settings, cloud_client):
    inventory.sync_now(client=cloud_client)
    servers = list(Server.objects.select_related("group"))
    images = planning.image_map()
    offered = {o.image.id: o.compatible for o in planning.target_options(servers, images)}
    for image in images.values():
        compatible = sum(1 for v in verdicts(servers, image, images, set()).values() if v.ok)
        assert offered.get(image.id, 0) == compatible
    assert offered  # the seeded fleet has compatible images
