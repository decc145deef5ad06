"""Load the demo machines from fixtures/demo_machines.json (idempotent)."""
import json
from pathlib import Path

from django.db import transaction

from flowr import interchange
from flowr.exceptions import FlowrError
from flowr.models import Machine

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "flowr-demo"
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "demo_machines.json"
# The instances a demo machine starts with (three plain ones unless listed here).
DEMO_STARTS = {
    "Vacation request": [
        {"title": "Ana: 2 days in May", "task_state": {"days": 2}},
        {"title": "Ben: 5 days in June", "task_state": {"days": 5}},
        {"title": "Cleo: 14 days in August", "task_state": {"days": 14}},
    ],
}


def demo_documents():
    """The demo machine documents (Flowr JSON, format 1)."""
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def load_demo():
    """Import, publish and start the demo machines that do not exist yet; returns their names."""
    created = []
    for doc in demo_documents():
        if Machine.objects.filter(name=doc["name"]).exists() or \
                Machine.objects.filter(uuid=interchange.uuid_of(doc)).exists():
            continue
        errors = interchange.validate_document(doc)
        if errors:
            raise FlowrError(f"The demo fixture {FIXTURE.name} does not match the demo rules: "
                             + " ".join(errors), errors=errors)
        with transaction.atomic():
            machine, _ = interchange.apply_document(doc, validate=False)
            machine.publish()
            for start in DEMO_STARTS.get(doc["name"], [{}] * 3):
                machine.start(**start)
        created.append(machine.name)
    return created
