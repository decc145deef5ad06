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


# Three instances per demo machine; orders and tickets carry the keys their rule sets
# declare searchable (flowr/demo/flowr_rules.py), so the instance list finds them.
DEMO_INSTANCES = {
    "orders": [
        ("ORD-1001", "Office chairs", {"customer": "Acme Ltd", "amount": 1200}),
        ("ORD-1002", "Printer paper", {"customer": "Globex", "amount": 80}),
        ("ORD-1003", "Standing desks", {"customer": "Acme Ltd", "amount": 4600}),
    ],
    "support": [
        ("TCK-501", "Cannot log in", {"customer": "Globex", "priority": "high"}),
        ("TCK-502", "Invoice address wrong", {"customer": "Initech", "priority": "normal"}),
        ("TCK-503", "Feature request: export", {"customer": "Acme Ltd", "priority": "low"}),
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
            for key, title, state in DEMO_INSTANCES.get(doc["rule_set"], [("", "", None)] * 3):
                machine.start(business_key=key, title=title, task_state=state)
        created.append(machine.name)
    return created
