"""Load the demo machines from fixtures/demo_machines.json (idempotent), and the desk's
demo team: groups, users and instances waiting for them (`setup_team`, demo mode only)."""
import json
from pathlib import Path

from django.db import transaction

from flowr import assignment, engine, interchange
from flowr.exceptions import FlowrError
from flowr.models import Machine

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "flowr-demo"
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "demo_machines.json"
#: The demo fixture's candidate groups (load_demo creates them before importing it).
GROUPS = ("Order reviewers", "Shipping team", "Support agents")
_TEAM_PERMISSIONS = ("flowr.view_instance", "flowr.step_instance", "flowr.view_machine",
                     "flowr.view_machineversion", "flowr.view_rulesetrecord")
_GROUP_PERMISSIONS = {"Order reviewers": ("flowr_demo.approve_order",)}
#: Demo users: (username, password, group). `make run` prints them.
TEAM = (("reviewer", "flowr-reviewer", "Order reviewers"),
        ("shipper", "flowr-shipper", "Shipping team"), ("agent", "flowr-agent", "Support agents"))
#: Instances the team finds waiting: (machine, business key, title, task state, states to
#: step through, team member who claims it or None).
_WORK = (
    ("Order approval", "ORD-2001", "Conference table", {"customer": "Initech", "amount": 900},
     ["Submitted"], "reviewer"),
    ("Order approval", "ORD-2002", "Monitor arms", {"customer": "Globex", "amount": 640},
     ["Submitted"], None),
    ("Order approval", "ORD-2003", "Whiteboards", {"customer": "Acme Ltd", "amount": 310},
     ["Submitted"], None),
    ("Order approval", "ORD-2004", "Laptop bags", {"customer": "Initech", "amount": 420},
     ["Submitted", "Approved"], None),
    ("Order approval", "ORD-2005", "Keyboards", {"customer": "Globex", "amount": 260},
     ["Submitted", "Approved"], "shipper"),
    ("Order approval", "ORD-2006", "Desk lamps", {"customer": "Acme Ltd", "amount": 150},
     ["Submitted", "Needs rework"], None),
    ("Support ticket", "TCK-601", "Password reset loops", {"customer": "Initech",
                                                           "priority": "high"}, [], None),
    ("Support ticket", "TCK-602", "Invoice missing", {"customer": "Globex",
                                                      "priority": "normal"}, ["Open"], "agent"),
    ("Support ticket", "TCK-603", "Slow export", {"customer": "Acme Ltd", "priority": "low"},
     ["Open"], None),
)


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
    # Leave requests time out in minutes; Cleo's long one ends as an incident.
    "leave": [
        ("", "Ana: 2 days in May", {"days": 2}),
        ("", "Ben: 5 days in June", {"days": 5}),
        ("", "Cleo: 14 days in August", {"days": 14}),
    ],
}


def demo_documents():
    """The demo machine documents (Flowr JSON, format 1)."""
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def load_demo():
    """Import, publish and start the demo machines that do not exist yet; returns their names."""
    from django.contrib.auth.models import Group

    for name in GROUPS:  # the fixture names them as candidate groups: they must exist
        Group.objects.get_or_create(name=name)
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


def _permissions(codenames):
    from django.contrib.auth.models import Permission

    found = []
    for codename in codenames:
        app_label, code = codename.split(".")
        found += Permission.objects.filter(content_type__app_label=app_label, codename=code)
    return found


def setup_team(demo_user):
    """Create the demo groups and users and give them waiting work; returns the new
    usernames (none when the team exists already)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user_model = get_user_model()
    if user_model.objects.filter(username__in=[name for name, _, _ in TEAM]).exists():
        return []
    with transaction.atomic():
        groups = {name: Group.objects.get_or_create(name=name)[0] for name in GROUPS}
        for name, group in groups.items():
            group.permissions.add(*_permissions(_TEAM_PERMISSIONS +
                                                _GROUP_PERMISSIONS.get(name, ())))
        team = {}
        for username, password, group in TEAM:
            user = user_model(username=username, is_staff=True)
            user.set_password(password)
            user.save()
            user.groups.add(groups[group])
            team[username] = user
        demo_user.groups.add(*groups.values())  # the demo login sees all the work
        _start_work(demo_user, team)
    return list(team)


def _start_work(demo_user, team):
    machines = {m.name: m for m in Machine.objects.filter(name__in={w[0] for w in _WORK})}
    for machine_name, key, title, state, path, claimer in _WORK:
        machine = machines.get(machine_name)
        if machine is None or machine.instances.filter(business_key=key).exists():
            continue
        instance = engine.start(machine, user=demo_user, business_key=key, title=title,
                                task_state=state)
        for name in path:
            engine.step(instance, to=name, user=demo_user)
        if claimer and not instance.assignee_id:
            assignment.claim(instance, team[claimer])
