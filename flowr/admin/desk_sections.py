"""The desk's built-in sections: My work and Machines (see flowr/admin/desk.py).

Both cost a constant number of queries whatever the numbers of machines, states and
instances: every list is one query for its rows (chosen on the instance table alone, then
read with their related rows) and one for its total, and the per-row step buttons come from the instance admin's `prepare_rows`
(cached compiled versions, cached permissions), exactly as on the instance list.
"""
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib import admin
from django.db.models import Count, F, Max, OuterRef, Q, Subquery, Window
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince

from .. import access
from ..models import HistoryEntry, Instance, Machine, State
from . import desk
from .assignment import AssigneeFilter, claim_button, claimable
from .instance_filters import MACHINE_PARAM, diagram_link, idle_q
from .instances import row_forms

ROWS = 10  # rows per work list
STUCK_AFTER = timedelta(days=1)  # the oldest instance of a state is "stuck" past this


def instance_admin(request):
    """The registered instance admin if the user may view instances, else None."""
    model_admin = admin.site._registry.get(Instance)
    if model_admin is None or not model_admin.has_view_permission(request):
        return None
    return model_admin


def _age(since, now):
    return timesince(since, now, depth=1)


def _changelist(query=""):
    return reverse("admin:flowr_instance_changelist") + query


def _active(queryset):
    idle = idle_q()
    queryset = queryset.filter(status=Instance.ACTIVE)
    return queryset.exclude(idle) if idle is not None else queryset


# -- My work ------------------------------------------------------------------------------

@dataclass
class WorkList:
    """One list of My work: its first rows and how many there are in all."""

    key: str
    title: str
    empty: str
    rows: list = field(default_factory=list)
    total: int = 0
    more_url: str = ""


class MyWorkSection(desk.DeskSection):
    """Instances assigned to me, claimable by my groups, and the ones I stepped last."""

    key = "my-work"
    title = "My work"
    order = 10
    template = "admin/flowr/desk/my_work.html"

    def is_visible(self, request):
        return instance_admin(request) is not None

    def load(self, request):
        model_admin, user = instance_admin(request), request.user
        base = model_admin.get_queryset(request)
        param = AssigneeFilter.parameter_name
        self.lists = [
            _work_list(base, _active(Instance.objects.filter(assignee_id=user.pk)),
                       WorkList("assigned", "Assigned to me", "Nothing is assigned to you.",
                                more_url=_changelist(f"?{param}={AssigneeFilter.ME}"
                                                     f"&status=active"))),
            _work_list(base, claimable(Instance.objects.all(), user),
                       WorkList("claimable", "Claimable by my groups", _claimable_empty(user),
                                more_url=_changelist(f"?{param}={AssigneeFilter.MY_GROUPS}"))),
            _recently_stepped(base, user, WorkList(
                "recent", "Recently stepped by me", "You have not stepped any instance yet.")),
        ]
        self._prepare(request, model_admin)

    def _prepare(self, request, model_admin):
        instances = [row for work in self.lists for row in work.rows]
        model_admin.prepare_rows(request, instances)
        now = timezone.now()
        for work in self.lists:
            work.rows = [self._row(model_admin, obj, now) for obj in work.rows]
        unique = {obj.pk: obj for obj in instances}  # one hidden form per instance
        self.row_forms = row_forms(model_admin, unique.values())
        self.children = [row for work in self.lists for row in work.rows]

    def _row(self, model_admin, obj, now):
        claim_url = model_admin.assignment_url("claim", obj)
        return {
            "instance": obj, "url": reverse("admin:flowr_instance_change", args=[obj.pk]),
            "machine": obj.machine.name, "state": obj.state_name,
            "age": _age(obj.state_entered_at, now), "steps": model_admin.next_steps(obj),
            "claim": claim_button(obj, claim_url) if obj._flowr_claimable else "",
            "assignee": access.assignee_name(obj),
        }


def _work_list(base, which, work):
    """Fill `work` with the longest-waiting ROWS of `which` (two queries: rows, total).

    The rows are chosen on the instance table alone, then read with their related rows,
    so the sort never carries the joins of thousands of rows.
    """
    first = which.order_by("state_entered_at", "pk").values("pk")[:ROWS]
    work.rows = list(base.filter(pk__in=first).order_by("state_entered_at", "pk"))
    work.total = which.count()  # always: the page's query count must not depend on the data
    work.more_url = work.more_url if work.total > len(work.rows) else ""
    return work


def _claimable_empty(user):
    if not access.user_groups(user):
        return "You are in no group, so no work waits for your groups."
    return "Nothing waits for your groups."


def _recently_stepped(base, user, work):
    """Fill `work` with the instances the user stepped last, newest first (one query)."""
    steps = HistoryEntry.objects.filter(user_id=user.pk, kind=HistoryEntry.STEP)
    last = (steps.order_by().values("instance_id").annotate(last=Max("at"))
            .order_by("-last", "instance_id").values("instance_id")[:ROWS])
    latest = steps.filter(instance=OuterRef("pk")).order_by("-at").values("at")[:1]
    work.rows = list(base.filter(pk__in=last).annotate(my_last_step=Subquery(latest))
                     .order_by("-my_last_step", "pk"))
    work.total = len(work.rows)
    return work


# -- Machines --------------------------------------------------------------------------------

class MachinesSection(desk.DeskSection):
    """Per machine: active instances per state (linked), finished/expired, oldest waiting."""

    key = "machines"
    title = "Machines"
    order = 20
    template = "admin/flowr/desk/machines.html"

    def is_visible(self, request):
        return instance_admin(request) is not None

    def load(self, request):
        now = timezone.now()
        totals = _status_totals(now)
        oldest = _oldest_per_state(now)
        running = [pk for pk, counts in totals.items() if counts[Instance.ACTIVE]]
        machines = (Machine.objects.filter(Q(archived=False) | Q(pk__in=running))
                    .order_by("name").values_list("pk", "name", "archived"))
        order = {(m, k): i for i, (m, k) in enumerate(
            State.objects.order_by("machine_id", "pk").values_list("machine_id", "key"))}
        self.machines = []
        for pk, name, archived in machines:
            states = sorted((row for row in oldest if row["machine_id"] == pk),
                            key=lambda row: (order.get((pk, row["state_key"]), 1 << 30),
                                             row["state_name"]))
            self.machines.append(_machine_block(pk, name, archived, totals.get(pk, {}),
                                                states, now))
        self.children = self.machines


_STATUSES = (Instance.ACTIVE, Instance.SUSPENDED, Instance.FINISHED, Instance.CANCELLED,
             Instance.EXPIRED)


def _status_totals(now):
    """{machine id: {status as shown: count}} (one query; idle instances count as expired)."""
    idle = idle_q()
    shown = {status: Q(status=status) for status in _STATUSES}
    if idle is not None:
        shown[Instance.ACTIVE] &= ~idle
        shown[Instance.SUSPENDED] &= ~idle
        shown[Instance.EXPIRED] |= idle
    rows = (Instance.objects.order_by().values("machine_id")
            .annotate(**{status: Count("pk", filter=q) for status, q in shown.items()}))
    return {row.pop("machine_id"): row for row in rows}


def _oldest_per_state(now):
    """One row per (machine, state) with active instances: their count, how many are
    overdue and the oldest of them (two queries: an aggregate, and the first row of each
    state by a window function)."""
    active = _active(Instance.objects.order_by())
    counts = {(row["machine_id"], row["state_key"]): row for row in active.values(
        "machine_id", "state_key").annotate(active=Count("pk"),
                                            overdue=Count("pk", filter=Q(due_at__lt=now)))}
    by_state = [F("machine_id"), F("state_key")]
    oldest = (active.annotate(rank=Window(RowNumber(), partition_by=by_state,
                                          order_by=[F("state_entered_at").asc(), F("pk").asc()]))
              .filter(rank=1)
              .values("pk", "machine_id", "state_key", "state_name", "state_entered_at",
                      "due_at", "title", "business_key"))
    rows = []
    for row in oldest:
        found = counts.get((row["machine_id"], row["state_key"]))
        if found:  # an instance that moved between the two reads is shown next time
            rows.append({**row, "active": found["active"], "overdue": found["overdue"]})
    return rows


def _machine_block(pk, name, archived, totals, states, now):
    link = f"?{MACHINE_PARAM}={pk}"
    counts = [(status, totals.get(status, 0), _changelist(f"{link}&status={status}"))
              for status in _STATUSES if totals.get(status) or status in (
                  Instance.ACTIVE, Instance.FINISHED, Instance.EXPIRED)]
    return {
        "name": name, "archived": archived, "counts": counts,
        "url": reverse("admin:flowr_machine_change", args=[pk]),
        "states": [_state_row(pk, row, now) for row in states],
    }


def _state_row(machine_pk, row, now):
    oldest = Instance(id=row["pk"], title=row["title"], business_key=row["business_key"])
    waited = now - row["state_entered_at"]
    overdue = row["due_at"] is not None and row["due_at"] < now
    return {
        "name": row["state_name"], "active": row["active"], "overdue": row["overdue"],
        "url": _changelist(diagram_link(machine_pk, row["state_key"])),
        "oldest": oldest.label, "oldest_url": reverse("admin:flowr_instance_change",
                                                      args=[row["pk"]]),
        "age": _age(row["state_entered_at"], now),
        "stuck": overdue or waited >= STUCK_AFTER,
    }


desk.register(MyWorkSection)
desk.register(MachinesSection)
