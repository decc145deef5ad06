"""cleanupflows: removes expired task state (Django store) and marks idle instances expired."""
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from flowr.models import Instance, TaskStateRecord
from flowr.statestore import get_store
from tests.conftest import REDIS_HOST, REDIS_TEST_DB

pytestmark = pytest.mark.django_db


def cleanupflows():
    out = StringIO()
    call_command("cleanupflows", stdout=out)
    return out.getvalue()


def record(task_id, idle_seconds):
    TaskStateRecord.objects.create(task_id=task_id, state={"id": task_id},
                                   updated_at=timezone.now() - timedelta(seconds=idle_seconds))


@pytest.fixture
def instances(example_machine):
    """Three instances: active and idle, active and fresh, finished and idle."""
    idle, fresh, finished = (example_machine.start() for _ in range(3))
    old = timezone.now() - timedelta(seconds=120)
    Instance.objects.filter(pk__in=[idle.pk, finished.pk]).update(last_activity=old)
    Instance.objects.filter(pk=finished.pk).update(status=Instance.FINISHED)
    return idle, fresh, finished


def statuses(*found):
    return [Instance.objects.get(pk=i.pk).status for i in found]


def test_removes_only_expired_rows_and_prints_the_count(settings):
    settings.FLOWS_STATE_STORE = "flowr.statestore.django_store"
    settings.FLOWS_TASK_IDLE_TIMEOUT = 60
    record("old-1", 61)
    record("old-2", 3600)
    record("fresh", 30)
    output = cleanupflows()
    assert "Removed 2 expired task state(s) from flowr.statestore.django_store." in output
    assert list(TaskStateRecord.objects.values_list("task_id", flat=True)) == ["fresh"]
    assert get_store().get_state("fresh") == {"id": "fresh"}
    assert "Removed 0 expired" in cleanupflows()


def test_marks_idle_active_instances_expired_in_one_update(settings, instances):
    settings.FLOWS_STATE_STORE = "flowr.statestore.django_store"
    settings.FLOWS_TASK_IDLE_TIMEOUT = 60
    idle, fresh, finished = instances
    with CaptureQueriesContext(connection) as queries:
        output = cleanupflows()
    assert "Marked 1 idle instance(s) as expired." in output
    assert statuses(idle, fresh, finished) == [Instance.EXPIRED, Instance.ACTIVE,
                                               Instance.FINISHED]
    updates = [q["sql"] for q in queries.captured_queries
               if q["sql"].startswith("UPDATE") and "flowr_instance" in q["sql"]]
    assert len(updates) == 1


@pytest.mark.redis
def test_with_redis_it_leaves_expiry_to_the_ttl(settings, instances, redis_url):
    settings.FLOWS_STATE_STORE = "flowr.statestore.redis_store"
    settings.FLOWS_REDIS_STATE_STORE_HOST = REDIS_HOST
    settings.FLOWS_REDIS_STATE_STORE_DB = REDIS_TEST_DB
    settings.FLOWS_TASK_IDLE_TIMEOUT = 60
    output = cleanupflows()
    assert "Redis removes expired task state itself" in output
    assert "Marked 1 idle instance(s) as expired." in output


def test_with_no_timeout_nothing_expires(settings, instances):
    settings.FLOWS_STATE_STORE = "flowr.statestore.django_store"
    settings.FLOWS_TASK_IDLE_TIMEOUT = 0
    record("ancient", 10 ** 6)
    assert "never expires" in cleanupflows()
    assert TaskStateRecord.objects.filter(task_id="ancient").exists()
    assert statuses(*instances) == [Instance.ACTIVE, Instance.ACTIVE, Instance.FINISHED]


def test_custom_store_without_cleanup_is_reported(settings, instances):
    settings.FLOWS_STATE_STORE = "tests.custom_store"
    settings.FLOWS_TASK_IDLE_TIMEOUT = 60
    output = cleanupflows()
    assert "tests.custom_store has no cleanup()" in output
    assert "Marked 1 idle instance(s) as expired." in output
