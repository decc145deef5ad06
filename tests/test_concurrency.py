"""Concurrent steps on PostgreSQL: row locks make every step apply once, in order."""
import threading
from collections import Counter

import pytest
from django.db import connection

from flowr.exceptions import AlreadyMoved
from flowr.models import Instance
from tests.factories import cycle_machine
from tests.test_engine import replay

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS, INSTANCES, ROUNDS = 6, 8, 15


def _run_threads(target):
    errors, barrier = [], threading.Barrier(THREADS)

    def worker(n):
        try:
            barrier.wait()
            target(n)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_concurrent_steps_all_apply_exactly_once(postgres_only):
    machine = cycle_machine(5)  # a cycle: every state has exactly one next state
    ids = [machine.start().pk for _ in range(INSTANCES)]
    done = Counter()
    lock = threading.Lock()

    def target(n):
        for _ in range(ROUNDS):
            for pk in ids:
                Instance.objects.get(pk=pk).step(note=f"thread {n}")
                with lock:
                    done[pk] += 1

    _run_threads(target)
    for pk in ids:
        instance = Instance.objects.get(pk=pk)
        assert instance.step_count == done[pk] == THREADS * ROUNDS
        assert instance.history.count() == THREADS * ROUNDS + 1
        assert replay(instance) == instance.state_key


def test_concurrent_double_submissions_step_once(postgres_only):
    machine = cycle_machine(4)
    ids = [machine.start().pk for _ in range(INSTANCES)]
    wins, losses = Counter(), Counter()
    lock = threading.Lock()

    def target(n):
        for _ in range(ROUNDS):
            for pk in ids:
                seen = Instance.objects.get(pk=pk)
                try:
                    seen.step(expected_state=seen.state_key)
                    outcome = wins
                except AlreadyMoved:
                    outcome = losses
                with lock:
                    outcome[pk] += 1

    _run_threads(target)
    for pk in ids:
        instance = Instance.objects.get(pk=pk)
        assert instance.step_count == wins[pk]
        assert wins[pk] + losses[pk] == THREADS * ROUNDS
        assert instance.history.count() == wins[pk] + 1
        assert replay(instance) == instance.state_key
    assert sum(losses.values()) > 0  # the race really happened
