"""The form, the plan, the worker's re-check and the simulator judge every pair alike.

They all call compat.verdict(), but each builds its facts from a different source: the
inventory rows (form and plan), the API records (the worker, just before sending) and the
simulator's own state (the cloud side). Every (server, image) pair of the seeded fleet is
checked, so a field that one side reads differently shows up here.
"""

import pytest

from dashboard import compat, inventory
from dashboard.models import Image, Server
from dashboard.rollouts import planning
from dashboard.rollouts.facts import image_facts, server_facts, verdicts

pytestmark = pytest.mark.django_db


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
            assert [r.code for r in plan[server.id].reasons] == [r.code for r in cloud.reasons]
            compared += 1
    assert compared == len(rows) * Image.objects.count()


def test_the_form_offers_exactly_the_images_the_plan_would_change_to(sim_settings, cloud_client):
    inventory.sync_now(client=cloud_client)
    servers = list(Server.objects.select_related("group"))
    images = planning.image_map()
    offered = {o.image.id: o.compatible for o in planning.target_options(servers, images)}
    for image in images.values():
        compatible = sum(1 for v in verdicts(servers, image, images, set()).values() if v.ok)
        assert offered.get(image.id, 0) == compatible
    assert offered  # the seeded fleet has compatible images
