"""Export and import of a 500-state machine: seconds and queries.

    python bench/importexport.py

Configures Django itself on a temporary SQLite file (migrated), builds a 500-state
machine, then prints export_500_s, import_500_s, export_500_queries and
import_500_queries, one `name: value` line each. Times are the median of 5 runs;
an import is into a database where the machine does not exist (a full create, with
its django-reversion revision).
"""
import os
import statistics
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATES = 500
RUNS = 5


def setup_django():
    sys.path.insert(0, ROOT)
    os.chdir(ROOT)
    os.environ["DJANGO_SETTINGS_MODULE"] = "flowr_site.settings"
    os.environ.update(DEBUG="0", SECRET_KEY="bench-" + "x" * 50, SECURE_SSL_REDIRECT="0",
                      ALLOWED_HOSTS="localhost")
    os.environ.pop("DATABASE_URL", None)
    folder = tempfile.mkdtemp(prefix="flowr-bench-ie-")
    os.environ["FLOWR_SQLITE_PATH"] = os.path.join(folder, "bench.sqlite3")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def register_chain_rules():
    from django import forms

    from flowr.rules import Rule, RuleSet, register
    from flowr.sync import sync_rule_sets

    class StepSettings(forms.Form):
        n = forms.IntegerField(min_value=0)

    class Start(Rule):
        children = ["Step"]

    class Step(Rule):
        children = ["Step", "Start"]
        multiple_paths = True
        settings_form = StepSettings

    register(RuleSet("bench_chain", root=Start, rules=[Start, Step]))
    sync_rule_sets()


def chain_document(count):
    """Start → Step 1 → … → Step n-1, every 10th step looping back to Start."""
    states = [{"key": "start", "name": "Start", "rule": "bench_chain.Start", "settings": {}}]
    states += [{"key": f"s{i}", "name": f"Step {i}", "rule": "bench_chain.Step",
                "settings": {"n": i}} for i in range(1, count)]
    keys = [s["key"] for s in states]
    edges = [[a, b] for a, b in zip(keys, keys[1:], strict=False)]
    edges += [[k, "start"] for k in keys[10::10]]
    return {"uuid": str(uuid.uuid4()), "name": f"Chain {count}", "description": "",
            "rule_set": "bench_chain", "format": 1,
            "graph": {"root": "start", "states": states, "transitions": edges}}


def measure(func):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        value = func()
        elapsed = time.perf_counter() - started
    return elapsed, len(queries), value


def main():
    setup_django()
    register_chain_rules()
    from flowr import interchange
    from flowr.models import Machine
    from flowr.resources import MachineJSON, MachineResource

    machine, _ = interchange.apply_document(chain_document(STATES))
    queryset = Machine.objects.filter(pk=machine.pk)

    def export():
        return MachineJSON().export_data(MachineResource().export(queryset))

    def import_(text):
        dataset = MachineJSON().create_dataset(text)
        result = MachineResource().import_data(dataset, dry_run=False, file_name="bench.json")
        assert result.totals["new"] == 1 and not result.has_validation_errors()

    export_runs, import_runs = [], []
    for _ in range(RUNS):
        export_runs.append(measure(export))
        text = export_runs[-1][2]
        Machine.objects.all().delete()
        import_runs.append(measure(lambda text=text: import_(text)))
        queryset = Machine.objects.all()
    print(f"export_500_s: {statistics.median(r[0] for r in export_runs):.4f}")
    print(f"import_500_s: {statistics.median(r[0] for r in import_runs):.4f}")
    print(f"export_500_queries: {export_runs[-1][1]}")
    print(f"import_500_queries: {import_runs[-1][1]}")


if __name__ == "__main__":
    main()
