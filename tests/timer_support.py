"""Machines with deadlines, running queued tasks in-process, and real db_worker processes."""
import os
import shlex
import signal
import subprocess
import sys
import time
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from flowr import builder
from flowr.rules import Rule, RuleSet, is_registered, register
from flowr.sync import sync_rule_sets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed_example(due_after=60, remind_after=None, name="Timed"):
    """A published flowr_example machine A → B (a demo rule set, so workers know it):
    A is due after `due_after` seconds and then steps to B (final)."""
    machine = builder.create_machine("flowr_example", name)
    b = builder.add_child(machine.root_state, "flowr_example.B")
    options = {"due_after": due_after, "timeout_to": b.key}
    if remind_after:
        options["remind_after"] = remind_after
    builder.update_state(machine.root_state, options=options)
    machine.publish()
    return machine


def register_timed_rules(key="timed"):
    """Waiting → (Escalated | Done), Escalated → (Done | Waiting). Escalated's guard refuses
    with the task state's "refuse" text; on_enter of Escalated and Waiting raise when the
    task state has "explode"."""
    if is_registered(key):
        return

    class Waiting(Rule):
        children = ["Escalated", "Done"]
        multiple_paths = True

        def on_enter(self, instance):
            if instance.task_state.get("explode"):
                raise RuntimeError("the queue service is down")

    class Escalated(Rule):
        children = ["Done", "Waiting"]
        multiple_paths = True

        def guard_enter(self, instance, source):
            return instance.task_state.get("refuse") or None

        def on_enter(self, instance):
            if instance.task_state.get("explode"):
                raise RuntimeError("the escalation service is down")
            instance.task_state["escalated"] = True

    class Done(Rule):
        """The end."""

    register(RuleSet(key, "Timed", root=Waiting, rules=[Waiting, Escalated, Done]))
    sync_rule_sets()


def timed_machine(due_after=3600, remind_after=None, key="timed", name="Escalation"):
    """A published machine of register_timed_rules: Waiting (root) times out to Escalated;
    Escalated leads to Done or back to Waiting."""
    register_timed_rules(key)
    machine = builder.create_machine(key, name)
    escalated = builder.add_child(machine.root_state, f"{key}.Escalated")
    done = builder.add_child(machine.root_state, f"{key}.Done")
    builder.connect(escalated, done)
    builder.connect(escalated, machine.root_state)
    options = {"due_after": due_after, "timeout_to": escalated.key}
    if remind_after:
        options["remind_after"] = remind_after
    builder.update_state(machine.root_state, options=options)
    machine.publish()
    return machine


# -- the queue ------------------------------------------------------------------------

def queued(path=None, status="READY"):
    """Task rows of the database backend (optionally one task, e.g. "fire_timeout")."""
    from django_tasks_db.models import DBTaskResult

    rows = DBTaskResult.objects.filter(status=status) if status else DBTaskResult.objects.all()
    if path:
        rows = rows.filter(task_path=f"flowr.tasks.{path}")
    return rows.order_by("run_after", "enqueued_at")


def run_due_tasks(ahead=timedelta(0), limit=200, sweep=False):
    """Run READY tasks due within `ahead` from now, in this process, the way db_worker does
    (claim, run, record the result); returns the finished rows in order. The recurring
    sweep runs only with `sweep` (it re-enqueues itself)."""
    from django_tasks_db.management.commands.db_worker import Worker

    worker = Worker(queue_names=["default"], interval=0, batch=True, backend_name="default",
                    startup_delay=False, max_tasks=None, worker_id="test",
                    excluded_queue_names=[])
    done = []
    for _ in range(limit):
        rows = queued().filter(run_after__lte=timezone.now() + ahead)
        row = (rows if sweep else rows.exclude(task_path="flowr.tasks.sweep")).first()
        if row is None:
            break
        row.claim("test")
        worker.run_task(row)
        row.refresh_from_db()
        done.append(row)
    return done


# -- real worker processes ---------------------------------------------------------------

def worker_env(**extra):
    """The environment of a db_worker subprocess using this test's database."""
    env = dict(os.environ)
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = (f"postgres://{settings['USER'] or 'postgres'}@"
                               f"{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/"
                               f"{settings['NAME']}")
    else:
        env.pop("DATABASE_URL", None)
        env["FLOWR_SQLITE_PATH"] = settings["NAME"]
    env.update(DEBUG="1", **{k: str(v) for k, v in extra.items()})
    return env


def procfile_worker():
    """(environment, arguments after manage.py) of the Procfile's `worker:` line."""
    line = next(text for text in open(os.path.join(ROOT, "Procfile"), encoding="utf-8")
                if text.startswith("worker:"))
    words = shlex.split(line.partition(":")[2])
    env = {}
    if words[0] == "env":
        words.pop(0)
        while "=" in words[0]:
            name, _, value = words.pop(0).partition("=")
            env[name] = value
    assert words[:2] == ["python", "manage.py"], f"unexpected Procfile worker line: {line}"
    return env, words[2:]


def start_worker(worker_id, env, log, *options, verbosity=1):
    """Start the Procfile's worker (`manage.py db_worker …`, plus `options`) in its own
    process group (so it can be killed whole), its output in `log` (at verbosity 1:
    "Starting worker …", then a line per task)."""
    extra_env, arguments = procfile_worker()
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", *arguments, *options, "--worker-id", worker_id,
             "--verbosity", str(verbosity)],
            cwd=ROOT, env={**env, **extra_env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)


def stop_worker(process, sig=signal.SIGTERM, timeout=20):
    """Stop a worker started by start_worker (the whole process group); its exit code."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def worker_started(log):
    """Has the worker logging to `log` started polling?"""
    return log.exists() and "Starting worker" in log.read_text(errors="replace")


def wait_for(predicate, timeout=120, every=0.2):
    """Poll `predicate` until it returns something true; returns it (or the last value)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = predicate()
    return value
