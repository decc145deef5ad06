"""Run by tests/test_faults.py as `python -m tests.fault_child step <instance id> <to>`:
steps one instance in a process of its own, which the test may kill half-way.

The database and the Redis store come from the environment the test passes
(DATABASE_URL or FLOWR_SQLITE_PATH, FLOWS_REDIS_STATE_STORE_*).
"""
import os
import sys


def main(argv):
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowr_site.settings")
    django.setup()
    from flowr.models import Instance

    command, pk, to = argv
    if command != "step":
        raise SystemExit(f"unknown command {command!r}")
    instance = Instance.objects.get(pk=pk)
    print("stepping", flush=True)
    instance.step(to=to)
    print("stepped", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
