"""Migrating 10,000 instances to another version (and reverting them): time and queries.

    python bench/migrations.py

10,000 instances sit at 'C' of the example machine (A→C→(D|E), E→A); version 2 replaces
C's branch by a new state 'C2' → D, and the migration maps C → C2 (each instance enters
C2, a new state: the general case). Prints, for SQLite then PostgreSQL
(a child process on FLOWR_BENCH_PG_URL, default flowr_bench):

    plan_10000_s_<db>       the dry run (what the preview computes)
    confirm_10000_s_<db>    the confirming request: plan, record the migration and its
                            10,000 items, enqueue the task (django-tasks database backend)
    migrate_10000_s_<db>    confirm + the task's run (batches of 500, one transaction each)
    migrate_10000_queries_<db>  SQL statements of all that
    revert_10000_s_<db>, revert_10000_queries_<db>
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _django  # noqa: E402

COUNT = int(os.environ.get("FLOWR_BENCH_MIGRATE_COUNT", "10000"))
PG_URL = os.environ.get("FLOWR_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/flowr_bench")


def _machine():
    """Versions 1 and 2 and COUNT instances at 'C' of version 1."""
    from flowr import builder

    machine = builder.create_machine("flowr_example", "Bench")
    c = builder.add_child(machine.root_state, "flowr_example.C")
    builder.add_child(c, "flowr_example.D")
    builder.connect(builder.add_child(c, "flowr_example.E"), machine.root_state)
    v1 = machine.publish()
    for _ in range(COUNT):
        machine.start(version=v1).step(to="C")
    builder.prune_state(machine.states.get(name="C"))
    c2 = builder.add_child(machine.root_state, "flowr_example.C", name="C2")
    builder.add_child(c2, "flowr_example.D")
    return machine, v1, machine.publish()


def _timed(fn):
    began = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - began


def _counted(fn):
    """(result, statements sent); counts every one (CaptureQueriesContext keeps 9,000)."""
    from django.db import connection

    count = [0]

    def counter(execute, sql, params, many, context):
        count[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counter):
        result = fn()
    return result, count[0]


def measure(db):
    from flowr import migration_runner as runner
    from flowr import migrations_api as migrations

    machine, v1, v2 = _machine()

    def plan():
        return migrations.plan_migration(machine, v2, mapping={"C": "C2"})

    def confirm():
        """What the admin's confirmation request does: plan, record, enqueue the task."""
        return runner.submit(plan(), background=True)

    ready, plan_s = _timed(plan)
    assert ready.counts()["map"] == COUNT
    queued, confirm_s = _timed(confirm)
    migration, run_s = _timed(lambda: runner.run(queued.pk))  # what the worker does
    assert migration.migrated == COUNT, migration.error
    reverted, revert_s = _timed(lambda: migrations.revert(migration))
    assert reverted.reverted == COUNT
    again, migrate_queries = _counted(lambda: runner.run(confirm().pk))
    assert again.migrated == COUNT
    _, revert_queries = _counted(lambda: migrations.revert(again))
    print(f"plan_{COUNT}_s_{db}: {plan_s:.2f}")
    print(f"confirm_{COUNT}_s_{db}: {confirm_s:.2f}")
    print(f"migrate_{COUNT}_s_{db}: {confirm_s + run_s:.2f}")
    print(f"migrate_{COUNT}_queries_{db}: {migrate_queries}")
    print(f"revert_{COUNT}_s_{db}: {revert_s:.2f}")
    print(f"revert_{COUNT}_queries_{db}: {revert_queries}")
    sys.stdout.flush()


def main():
    _django.setup()
    measure("sqlite")
    if _django.postgres_available():
        subprocess.run([sys.executable, __file__, "--postgres"], check=True)
    else:
        print("migrate_10000_s_postgres: unavailable (PostgreSQL not reachable)",
              file=sys.stderr)


if __name__ == "__main__":
    if "--postgres" in sys.argv:
        _django.setup(PG_URL)
        measure("postgres")
    else:
        main()
