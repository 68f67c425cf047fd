"""Migration 0007 gives existing rollouts a kind and turns a requested cancel into a state."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("dashboard", "0006_wave_session_policy")]
AFTER = [("dashboard", "0007_rollout_lifecycle")]


@pytest.mark.django_db(transaction=True)
def test_existing_rollouts_get_a_kind_and_a_cancel_in_flight_becomes_cancelling():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("dashboard")
    try:
        executor.migrate(BEFORE)
        old = executor.loader.project_state(BEFORE).apps.get_model("dashboard", "Rollout")
        plain = old.objects.create(created_by="otto", kind="change", state="succeeded")
        retry = old.objects.create(created_by="otto", kind="change", retry_of=plain)
        revert = old.objects.create(created_by="otto", kind="revert", retry_of=plain)
        stopping = old.objects.create(created_by="otto", state="running", cancel_requested=True)
        done = old.objects.create(created_by="otto", state="cancelled", cancel_requested=True)

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps.get_model("dashboard", "Rollout")
        kinds = dict(new.objects.values_list("pk", "kind"))
        assert (kinds[plain.pk], kinds[retry.pk], kinds[revert.pk]) == ("plan", "retry", "revert")
        states = dict(new.objects.values_list("pk", "state"))
        assert (states[stopping.pk], states[done.pk]) == ("cancelling", "cancelled")
    finally:
        MigrationExecutor(connection).migrate(latest)
