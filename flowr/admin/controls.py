"""Operator controls in the instance admin: a panel on the instance page, list actions.

Cancel, suspend, resume, move to state and undo, each behind its own permission
(flowr.cancel_instance, flowr.suspend_instance, flowr.override_instance); the views
are in control_views.
"""
from django.contrib import admin
from django.urls import path, reverse

from .. import controls
from ..controls import CANCEL, CONTROLS, MOVE, RESUME, SUSPEND, UNDO
from . import control_views as views

ACTIONS = ("cancel_selected", "suspend_selected", "resume_selected", "move_selected_to_state",
           "undo_selected")


class InstanceControlsMixin:
    """Cancel, suspend/resume, move to state, undo: single (panel) and bulk (actions)."""

    # -- permissions (used by @admin.action(permissions=[...])) ------------------------------
    def has_cancel_permission(self, request):
        return views.has_control_permission(request, CANCEL)

    def has_suspend_permission(self, request):
        return views.has_control_permission(request, SUSPEND)

    def has_override_permission(self, request):
        return views.has_control_permission(request, MOVE)

    # -- URLs -----------------------------------------------------------------------------
    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("controls/<str:name>/", wrap(self.control_bulk_view),
                 name="%s_%s_control_bulk" % info),
            path("<path:object_id>/control/<str:name>/", wrap(self.control_view),
                 name="%s_%s_control" % info),
        ] + super().get_urls()

    def control_view(self, request, object_id, name):
        """POST: an operator control on one instance (confirmation page, then the control)."""
        return views.control_view(self, request, object_id, name)

    def control_bulk_view(self, request, name):
        """POST: an operator control on the selected instances (page, then the report)."""
        return views.bulk_view(self, request, name)

    # -- the instance page's panel ------------------------------------------------------------
    def instance_context(self, request, obj):
        context = super().instance_context(request, obj)
        buttons = self._control_buttons(request, obj)
        if buttons:
            context["flowr_controls"] = buttons
            context["flowr_panels"].append("admin/flowr/instance/includes/controls.html")
        return context

    def _control_buttons(self, request, obj):
        """[{control, url, problem}] for the controls the user may use (one query for undo)."""
        allowed = [c for c in CONTROLS.values() if views.has_control_permission(request, c)]
        if not allowed:
            return []
        last = None
        if UNDO in allowed:
            last = controls.last_entries([obj]).get(obj.pk)
        buttons = []
        for control in allowed:
            problem = (controls.undo_problem(obj, last) if control is UNDO
                       else controls.status_problem(obj, control))
            url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_control",
                          args=[obj.pk, control.name], current_app=self.admin_site.name)
            buttons.append({"control": control, "url": url, "problem": problem})
        return buttons

    # -- bulk actions ---------------------------------------------------------------------
    @admin.action(permissions=["cancel"], description="Cancel selected instances…")
    def cancel_selected(self, request, queryset):
        """Confirmation page (reason), then cancel each selected instance; ends on a report."""
        return views.bulk_action(self, request, queryset, CANCEL.name)

    @admin.action(permissions=["suspend"], description="Suspend selected instances…")
    def suspend_selected(self, request, queryset):
        return views.bulk_action(self, request, queryset, SUSPEND.name)

    @admin.action(permissions=["suspend"], description="Resume selected instances…")
    def resume_selected(self, request, queryset):
        return views.bulk_action(self, request, queryset, RESUME.name)

    @admin.action(permissions=["override"], description="Move selected instances to a state…")
    def move_selected_to_state(self, request, queryset):
        return views.bulk_action(self, request, queryset, MOVE.name)

    @admin.action(permissions=["override"], description="Undo the last step of selected "
                                                        "instances…")
    def undo_selected(self, request, queryset):
        return views.bulk_action(self, request, queryset, UNDO.name)
