"""Build the demo machines from the demo rule sets (idempotent)."""
from django.db import transaction

from flowr import builder
from flowr.models import Machine

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "flowr-demo"


def _build_example(machine):
    a = machine.root_state
    c = builder.add_child(a, "flowr_example.C")
    builder.add_child(c, "flowr_example.D")
    e = builder.add_child(c, "flowr_example.E")
    builder.connect(e, a)


def _build_orders(machine):
    draft = machine.root_state
    submitted = builder.add_child(draft, "orders.Submitted")
    approved = builder.add_child(submitted, "orders.Approved", settings={"max_amount": 5000})
    builder.add_child(submitted, "orders.Rejected")
    rework = builder.add_child(submitted, "orders.Rework")
    builder.connect(rework, submitted)
    builder.add_child(approved, "orders.Shipped")


def _build_support(machine):
    new = machine.root_state
    opened = builder.add_child(new, "support.Open")
    waiting = builder.add_child(opened, "support.Waiting")
    resolved = builder.add_child(opened, "support.Resolved")
    builder.connect(waiting, opened)
    builder.add_child(resolved, "support.Closed")
    builder.connect(resolved, opened)


DEMOS = [
    ("Flowr example", "flowr_example", "A→C→(D|E) with the loop E→A.", _build_example),
    ("Order approval", "orders", "Orders reviewed by managers, with a rework loop.",
     _build_orders),
    ("Support ticket", "support", "Tickets cycling between open and waiting.", _build_support),
]


def load_demo():
    """Create and publish the demo machines that do not exist yet; returns their names."""
    created = []
    for name, rule_set, description, build in DEMOS:
        if Machine.objects.filter(name=name).exists():
            continue
        with transaction.atomic():
            machine = builder.create_machine(rule_set, name, description)
            build(machine)
            machine.publish()
            for _ in range(3):
                machine.start()
        created.append(name)
    return created
