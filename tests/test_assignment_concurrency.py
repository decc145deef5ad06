"""Parallel claims on PostgreSQL: the row lock lets exactly one person win each instance."""
import threading

import pytest
from django.db import connection

from flowr import assignment, engine
from flowr.exceptions import AlreadyAssigned
from flowr.models import HistoryEntry, Instance
from tests.desk import STEPPER, make_user, review_machine

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PEOPLE, INSTANCES = 6, 10


def test_parallel_claims_have_exactly_one_winner_per_instance(postgres_only):
    machine = review_machine()
    users = [make_user(f"reviewer{n}", *STEPPER, groups=["Reviewers"]) for n in range(PEOPLE)]
    ids = []
    for _ in range(INSTANCES):
        instance = machine.start()
        engine.step(instance, to="Review")
        ids.append(instance.pk)
    wins, losses, errors = [], [], []
    lock, barrier = threading.Lock(), threading.Barrier(PEOPLE)

    def person(user):
        try:
            barrier.wait()
            for pk in ids:  # every person on its own connection, all at once
                try:
                    assignment.claim(Instance.objects.get(pk=pk), user)
                    outcome = (wins, (pk, user.username))
                except AlreadyAssigned as exc:
                    outcome = (losses, (pk, user.username, exc.assignee, str(exc)))
                with lock:
                    outcome[0].append(outcome[1])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=person, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    winners = dict(wins)
    assert sorted(winners) == sorted(ids) and len(wins) == INSTANCES
    assert len(losses) == INSTANCES * (PEOPLE - 1)
    for pk, loser, named, message in losses:
        assert named == winners[pk] != loser
        assert f"already assigned to {winners[pk]}" in message
    for pk in ids:
        instance = Instance.objects.select_related("assignee").get(pk=pk)
        assert instance.assignee.username == winners[pk]
        entries = list(instance.history.order_by("seq"))
        assert [e.seq for e in entries] == list(range(len(entries)))
        claims = [e for e in entries if e.kind == HistoryEntry.ASSIGN]
        assert [c.data["assignee"] for c in claims] == [winners[pk]]
        assert engine.replay(entries) == engine.position_of(instance)
