"""The django-tasks-db backend works on this Django version, end to end."""

import pytest
from django.core.management import call_command
from django_tasks_db.models import DBTaskResult

from dashboard import tasks
from dashboard.models import WorkerHeartbeat


@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_on_the_database_backend_runs_under_db_worker_batch():
    result = tasks.record_heartbeat.enqueue("batch-worker")
    assert DBTaskResult.objects.filter(id=result.id, status="READY").exists()

    call_command("db_worker", batch=True, reload=False, verbosity=0)

    result.refresh()
    assert result.status == "SUCCESSFUL"
    assert result.return_value == "batch-worker"
    assert WorkerHeartbeat.objects.filter(worker_id="batch-worker").exists()
