"""Assignment in the instance admin: who has an instance, claim / assign / unassign.

InstanceAssignmentMixin (one of InstanceAdmin's bases) adds, through the hooks described
in flowr/admin/instances.py:

- an "assignee" list column (with a one-click Claim button on rows the user may claim;
  it submits the row's hidden step form to the claim URL) and the "assignee" list filter
  (assigned to me, unassigned, claimable by my groups, by assignee);
- the Assignment panel of the instance page (`flowr_panels`): assignee, candidate groups,
  Claim, Assign to… / Reassign to…, Unassign; refused buttons are disabled with the reason;
- the POST views (flowr/admin/assignment_views.py) and the bulk actions claim / assign /
  unassign, each ending on the per-instance report.

Every change goes through flowr.assignment (row lock, status check, history row).
"""
import re

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.urls import path, reverse
from django.utils.html import format_html

from .. import access, assignment, engine
from ..models import Instance
from . import assignment_views as views
from .instance_filters import idle_q

_ID = re.compile(r"[0-9]{1,18}")
ASSIGN_CHOICES_LIMIT = 500  # users offered in "Assign to…" (candidates of one state)
#: The bulk actions of this module (InstanceAdmin lists them in its `actions`).
ACTIONS = ("claim_selected", "assign_selected", "unassign_selected")


class AssigneeFilter(admin.SimpleListFilter):
    """Assigned to me, unassigned, claimable by my groups, or a given assignee."""

    title = "assignee"
    parameter_name = "assignee"
    ME, NOBODY, MY_GROUPS = "me", "none", "mygroups"

    def lookups(self, request, model_admin):
        users = (get_user_model().objects
                 .filter(pk__in=Instance.objects.filter(assignee__isnull=False)
                         .values("assignee_id"))
                 .order_by("username").values_list("pk", "username")[:100])
        return [(self.ME, "Assigned to me"), (self.NOBODY, "Unassigned"),
                (self.MY_GROUPS, "Claimable by my groups"),
                *((str(pk), f"Assigned to {name}") for pk, name in users)]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value == self.ME:
            return queryset.filter(assignee_id=request.user.pk)
        if value == self.NOBODY:
            return queryset.filter(assignee__isnull=True)
        if value == self.MY_GROUPS:
            return claimable(queryset, request.user)
        if _ID.fullmatch(value):
            return queryset.filter(assignee_id=int(value))
        raise IncorrectLookupParameters(f"Unknown assignee {value[:40]!r}.")


def claimable(queryset, user):
    """The instances of `queryset` the user's groups may claim (not idle-expired)."""
    where = assignment.claimable_q(user)
    if where is None:
        return queryset.none()
    idle = idle_q()
    queryset = queryset.filter(where)
    return queryset.exclude(idle) if idle is not None else queryset


def claim_button(instance, url):
    """A one-click Claim button submitting the row's hidden step form to the claim URL."""
    return format_html('<button type="submit" form="flowr-step-{}" formaction="{}" '
                       'class="grp-button flowr-step flowr-claim" title="Take this instance: '
                       'you become its assignee">Claim</button>', instance.pk, url)


class InstanceAssignmentMixin:
    """The instance admin's assignment feature (column, filter, panel, views, actions)."""

    assignment_panel_template = "admin/flowr/instance/includes/assignment.html"

    # -- permissions ------------------------------------------------------------------
    def has_assign_permission(self, request, obj=None):
        """May the user assign instances to others? (flowr.assign_instance)"""
        return request.user.has_perm(access.ASSIGN)

    # -- urls ---------------------------------------------------------------------------
    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/claim/", wrap(self.claim_view), name="%s_%s_claim" % info),
            path("<path:object_id>/assign/", wrap(self.assign_view),
                 name="%s_%s_assign" % info),
            path("<path:object_id>/unassign/", wrap(self.unassign_view),
                 name="%s_%s_unassign" % info),
        ] + super().get_urls()

    def assignment_url(self, name, instance):
        """The URL of the claim / assign / unassign view of an instance."""
        return reverse(f"admin:flowr_instance_{name}", args=[instance.pk],
                       current_app=self.admin_site.name)

    def claim_view(self, request, object_id):
        """POST: claim one instance."""
        return views.claim_view(self, request, object_id)

    def assign_view(self, request, object_id):
        """POST: assign one instance to the posted user."""
        return views.assign_view(self, request, object_id)

    def unassign_view(self, request, object_id):
        """POST: unassign one instance."""
        return views.unassign_view(self, request, object_id)

    # -- the list -----------------------------------------------------------------------
    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        at = columns.index("status_label") + 1 if "status_label" in columns else len(columns)
        columns.insert(at, "assignee_column")
        return columns

    def get_list_filter(self, request):
        return [*super().get_list_filter(request), AssigneeFilter]

    def prepare_rows(self, request, instances):
        """Mark the rows the user may claim with one click (no query per row)."""
        super().prepare_rows(request, instances)
        for instance in instances:
            instance._flowr_claimable = self._claimable_row(request, instance)

    def _claimable_row(self, request, instance):
        if instance.assignee_id or not getattr(instance, "_flowr_steps", None):
            return False  # no hidden row form without step buttons
        if getattr(instance, "_flowr_status", None) != Instance.ACTIVE:
            return False
        graph = engine.compiled(instance.version)
        return assignment.claim_problem(instance, graph, request.user) is None

    @admin.display(description="assignee", ordering="assignee__username")
    def assignee_column(self, obj):
        name = access.assignee_name(obj)
        if name:
            return format_html('<span class="flowr-assignee flowr-wrap">{}</span>', name)
        if getattr(obj, "_flowr_claimable", False):
            return claim_button(obj, self.assignment_url("claim", obj))
        return format_html('<span class="flowr-muted">{}</span>', "—")

    # -- bulk actions -------------------------------------------------------------------
    @admin.action(permissions=["step"], description="Claim selected instances")
    def claim_selected(self, request, queryset):
        """Bulk action: claim each selected instance; ends on the report."""
        if not self.has_step_permission(request):
            raise PermissionDenied
        return views.bulk_claim(self, request, queryset)

    @admin.action(permissions=["assign"], description="Assign selected instances to…")
    def assign_selected(self, request, queryset):
        """Bulk action: choose a user, then assign each selected instance to them."""
        if not self.has_assign_permission(request):
            raise PermissionDenied
        return views.bulk_assign(self, request, queryset)

    @admin.action(permissions=["assign", "step"], description="Unassign selected instances")
    def unassign_selected(self, request, queryset):
        """Bulk action: unassign each selected instance (yours, or any with the permission)."""
        if not (self.has_assign_permission(request) or self.has_step_permission(request)):
            raise PermissionDenied
        return views.bulk_unassign(self, request, queryset)

    def changelist_view(self, request, extra_context=None):
        # Django answers an action the user may not run with "No action selected"; a POST
        # naming one of ours that the user may not run is forged: refuse it plainly.
        action = request.POST.get("action", "") if request.method == "POST" else ""
        if action in ACTIONS and action not in (self.get_actions(request) or {}):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    # -- the instance page -----------------------------------------------------------
    def instance_context(self, request, obj):
        context = super().instance_context(request, obj)
        context["flowr_panels"].append(self.assignment_panel_template)
        context["flowr_assignment"] = self.assignment_panel(request, obj, context["flowr_status"])
        return context

    def assignment_panel(self, request, obj, status):
        """What the Assignment panel shows: assignee, candidates, buttons with reasons."""
        user, graph = request.user, engine.compiled(obj.version)
        can_step, can_assign = self.has_step_permission(request), self.has_assign_permission(request)
        panel = {
            "assignee": access.assignee_name(obj), "is_me": obj.assignee_id == user.pk,
            "groups": access.candidate_groups(graph, obj.state_key),
            "is_candidate": access.is_candidate(graph, obj.state_key, user),
            "open": status in assignment.ALLOWED, "position": obj.step_count,
        }
        if not panel["open"]:
            return panel
        if not panel["is_me"]:
            panel["claim"] = {"url": self.assignment_url("claim", obj), "reason": (
                assignment.claim_problem(obj, graph, user) if can_step else
                "Claiming needs the “Can step instances” permission.")}
        if obj.assignee_id:
            panel["unassign"] = {"url": self.assignment_url("unassign", obj), "reason": (
                assignment.unassign_problem(obj, user) if can_step or can_assign else
                "Unassigning needs the “Can step instances” permission.")}
        panel["assign"] = self._assign_choices(obj, graph, can_assign)
        return panel

    def _assign_choices(self, obj, graph, can_assign):
        label = "Reassign to" if obj.assignee_id else "Assign to"
        choice = {"url": self.assignment_url("assign", obj), "label": label, "users": []}
        if not can_assign:
            choice["reason"] = ("Assigning instances needs the permission “Can assign "
                                "instances to other users”.")
            return choice
        users = assignment.candidate_users(graph, obj.state_key)
        if obj.assignee_id:
            users = users.exclude(pk=obj.assignee_id)
        choice["users"] = list(users.values_list("pk", "username")[:ASSIGN_CHOICES_LIMIT])
        if not choice["users"]:
            choice["reason"] = ("Nobody else can be assigned here: no other active staff user "
                                "with the step permission is in the candidate groups.")
        return choice
