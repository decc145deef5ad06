"""Concurrent steps, undos and suspends on PostgreSQL: the row lock decides, history chains."""
import threading
from collections import Counter

import pytest

from flowr import builder, controls, engine
from flowr.exceptions import AlreadyMoved, StatusForbids, UndoRefused
from flowr.models import Instance
from flowr.rules import Rule, RuleSet, register
from flowr.sync import sync_rule_sets
from tests.test_concurrency import _run_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

INSTANCES, ROUNDS = 4, 12


@pytest.fixture
def counting_machine(postgres_only):
    """Head → Link → Link → Head …, each entry counting n in the task state."""
    class Counting(Rule):
        def on_enter(self, instance):
            instance.task_state["n"] = instance.task_state.get("n", 0) + 1

    class Head(Counting):
        children = ["Link"]

    class Link(Counting):
        children = ["Head"]

    register(RuleSet("undo_race", root=Head, rules=[Head, Link]))
    sync_rule_sets()
    machine = builder.create_machine("undo_race", "Undo race")
    link = builder.add_child(machine.root_state, "undo_race.Link")
    builder.connect(link, machine.root_state)
    machine.publish()
    return machine


def test_undo_races_steps_and_only_ever_undoes_the_step_it_saw(counting_machine):
    ids = [counting_machine.start().pk for _ in range(INSTANCES)]
    wins, refusals = Counter(), Counter()
    lock = threading.Lock()

    def target(n):
        for _ in range(ROUNDS):
            for pk in ids:
                seen = Instance.objects.get(pk=pk)
                try:
                    if n % 2:
                        controls.undo_last_step(seen, reason=f"thread {n}",
                                                expected_position=seen.step_count)
                        outcome = ("undo", pk)
                    else:
                        seen.step(expected_position=seen.step_count)
                        outcome = ("step", pk)
                except (AlreadyMoved, UndoRefused) as exc:
                    with lock:
                        refusals[type(exc).__name__] += 1
                    continue
                with lock:
                    wins[outcome] += 1

    _run_threads(target)
    assert refusals["AlreadyMoved"] > 0  # the race really happened
    assert sum(count for (kind, _), count in wins.items() if kind == "undo") > 0
    for pk in ids:
        row = Instance.objects.get(pk=pk)
        entries = list(row.history.order_by("seq"))
        assert engine.replay(entries) == engine.position_of(row)
        assert [e.seq for e in entries] == list(range(row.last_seq + 1))
        steps, undos = wins[("step", pk)], wins[("undo", pk)]
        assert len(entries) == 1 + steps + undos
        by_seq = {e.seq: e for e in entries}
        for entry in entries:
            if entry.kind == "undo":  # it took back the step right before it, nothing else
                undone = by_seq[entry.data["undone_seq"]]
                assert undone.seq == entry.seq - 1 and undone.kind == "step"
                assert entry.to_key == undone.from_key
        assert row.task_state["n"] == 1 + steps - undos
        assert row.step_count == steps + undos


def test_a_suspend_racing_a_step_wins_or_loses_cleanly(counting_machine):
    ids = [counting_machine.start().pk for _ in range(INSTANCES)]

    def target(n):
        for _ in range(ROUNDS):
            for pk in ids:
                seen = Instance.objects.get(pk=pk)
                try:
                    if n % 3 == 0:
                        controls.suspend(seen, reason="r", expected_position=seen.step_count)
                    elif n % 3 == 1:
                        controls.resume(seen, reason="r", expected_position=seen.step_count)
                    else:
                        seen.step(expected_position=seen.step_count)
                except (AlreadyMoved, StatusForbids):
                    continue
                except Exception as exc:  # a step of a suspended instance
                    if "is suspended" not in str(exc):
                        raise

    _run_threads(target)
    for pk in ids:
        row = Instance.objects.get(pk=pk)
        entries = list(row.history.order_by("seq"))
        assert engine.replay(entries) == engine.position_of(row)
        statuses = [e.status for e in entries]
        for before, entry in zip(statuses, entries[1:], strict=False):
            if entry.kind == "step":
                assert before == "active"  # never stepped while suspended
