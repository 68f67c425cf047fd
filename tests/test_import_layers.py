"""The import layers as pyproject.toml declares them: the identity layer is ordered without a
cycle, and nothing below the tasks module enqueues through it (even from inside a function,
where an import dodges a cycle at run time but still couples the layers)."""

import tomllib
from pathlib import Path

import grimp
import pytest
from django_tasks_db.models import DBTaskResult

from dashboard import inventory, notify, tasks

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("dashboard", cache_dir=None)


@pytest.fixture(scope="module")
def layers_contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["id"] == "layers")


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("dashboard.audit", "dashboard.sso"),
        ("dashboard.audit", "dashboard.roles"),
        ("dashboard.roles", "dashboard.sso"),
        ("dashboard.netaddr", "dashboard.audit"),
        ("dashboard.inventory", "dashboard.tasks"),
        ("dashboard.notify", "dashboard.tasks"),
    ],
)
def test_a_lower_module_reaches_no_upper_one_by_any_import(graph, lower, upper):
    chain = graph.find_shortest_chain(importer=lower, imported=upper)
    assert chain is None, " -> ".join(chain or ())


def test_the_identity_layer_is_ordered_and_nothing_enqueues_upward(layers_contract):
    layers = layers_contract["layers"]
    assert [layers.index(m) for m in ("dashboard.sso", "dashboard.roles", "dashboard.audit")] == (
        sorted(layers.index(m) for m in ("dashboard.sso", "dashboard.roles", "dashboard.audit"))
    )
    ignored = layers_contract.get("ignore_imports", [])
    assert not [rule for rule in ignored if rule.endswith("-> dashboard.tasks")]


def test_every_task_keeps_one_address_in_the_tasks_module():
    assert tasks.sync_inventory is inventory.sync_inventory
    assert tasks.deliver_notification is notify.deliver_notification


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("stored_path", "task"),
    [
        ("dashboard.tasks.sync_inventory", inventory.sync_inventory),
        ("dashboard.inventory.sync_inventory", inventory.sync_inventory),
        ("dashboard.tasks.deliver_notification", notify.deliver_notification),
        ("dashboard.notify.deliver_notification", notify.deliver_notification),
    ],
)
def test_a_queued_row_finds_its_task_by_the_old_path_and_the_new(stored_path, task):
    """Rows queued before the tasks moved name them under dashboard.tasks."""
    row = DBTaskResult.objects.create(
        task_path=stored_path, backend_name="default", args_kwargs={"args": [], "kwargs": {}}
    )
    assert row.task.func is task.func
