"""django-reversion history, compare, revert and recover for machines (moves: .moves).

The work is done in flowr.versioning (snapshots, diff, revert, recover, move plans) and
flowr.engine (moves); these views check permissions, call it and report with a message.
"""
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from reversion.admin import VersionAdmin
from reversion.models import Version

from .. import versioning
from ..builder import revision
from ..diagrams import render_graph
from ..exceptions import FlowrError
from .moves import InstanceMoveMixin

__all__ = ["MachineVersioningMixin", "InstanceMoveMixin"]

TEMPLATES = "admin/flowr/machine/"


def _diagram(definition, highlight=()):
    nodes, edges = versioning.diagram_input(definition)
    return render_graph(nodes, edges, current=None, visited=tuple(highlight))


def _changed_keys(diff, side):
    """State keys a diff touches on one side ('old' or 'new'), for highlighting."""
    keys = {s["key"] for s in diff.renamed + diff.rule_changed + diff.settings_changed}
    return keys | {s["key"] for s in (diff.removed if side == "old" else diff.added)}


class MachineVersioningMixin(VersionAdmin):
    """History, compare, revert and recover deleted machines; delete guard and archive."""

    object_history_template = TEMPLATES + "revision_history.html"
    versioning_change_list_template = TEMPLATES + "change_list_tools.html"
    history_latest_first = True

    def __init__(self, *args, **kwargs):
        # ImportExportMixin (earlier in the MRO) swaps change_list_template for its own
        # chain at __init__; under grappelli that chain extends admin/change_list.html
        # directly and reversion's "Recover deleted" link is lost. Our template names
        # every tool (Import, Export, Recover deleted, Add) explicitly.
        self.import_export_change_list_template = self.versioning_change_list_template
        versioning.register_models()  # before VersionAdmin registers Machine without follows
        super().__init__(*args, **kwargs)

    def get_urls(self):
        view, info = self.admin_site.admin_view, (self.opts.app_label, self.opts.model_name)
        return [
            path("<path:object_id>/history/compare/", view(self.compare_view),
                 name="%s_%s_compare" % info),
            path("<path:object_id>/history/<int:version_id>/revert/", view(self.revert_view),
                 name="%s_%s_revert" % info),
            path("recover/<int:version_id>/confirm/", view(self.recover_confirm_view),
                 name="%s_%s_recover_confirm" % info),
        ] + super().get_urls()

    def _url(self, name, *args):
        info = self.admin_site.name, self.opts.app_label, self.opts.model_name
        return reverse("%s:%s_%s_%s" % (info + (name,)), args=args)

    def _machine(self, request, object_id, change=False):
        machine = self.get_object(request, unquote(object_id))
        if machine is None:
            raise Http404(f"No machine with id {object_id}.")
        allowed = (self.has_change_permission(request, machine) if change
                   else self.has_view_or_change_permission(request, machine))
        if not allowed:
            raise PermissionDenied
        return machine

    def _versions(self, machine):
        return (Version.objects.get_for_object(machine)
                .select_related("revision", "revision__user").order_by("-pk"))

    # -- history, preview, compare ---------------------------------------------------

    def history_view(self, request, object_id, extra_context=None):
        machine = self._machine(request, object_id)
        rows = [{"version": v, "revision": v.revision,
                 "preview_url": self._url("revision", quote(machine.pk), v.pk)}
                for v in self._versions(machine)]
        context = {"flowr_revisions": rows, "compare_url": self._url("compare", quote(machine.pk))}
        context.update(extra_context or {})
        return super().history_view(request, object_id, context)

    def revision_view(self, request, object_id, version_id, extra_context=None):
        """Preview one revision: its graph, diagram, difference with now, and a revert button."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        machine = self._machine(request, object_id)
        version = get_object_or_404(self._versions(machine), pk=version_id)
        snap = versioning.snapshot(version.revision, machine.pk)
        definition = snap.definition()
        diff = versioning.diff_definitions(definition, versioning.current_definition(machine))
        context = dict(
            self.admin_site.each_context(request), opts=self.opts, original=machine,
            title=f"Revision of {machine} from {version.revision.date_created:%Y-%m-%d %H:%M}",
            version=version, snapshot=snap, definition=definition, diff=diff,
            errors=versioning.snapshot_errors(snap), diagram=_diagram(definition),
            transition_names=versioning.transition_names(definition),
            can_revert=self.has_change_permission(request, machine),
            revert_url=self._url("revert", quote(machine.pk), version.pk),
            compare_url=self._url("compare", quote(machine.pk)) + f"?a={version.pk}&b=current",
            history_url=self._url("history", quote(machine.pk)),
        )
        context.update(extra_context or {})
        return TemplateResponse(request, TEMPLATES + "revision_preview.html", context)

    def _side(self, machine, versions, ref):
        if ref in (None, "", "current"):
            return "current", "The machine now", versioning.current_definition(machine)
        version = next((v for v in versions if str(v.pk) == str(ref)), None)
        if version is None:
            raise Http404(f"Machine '{machine}' has no revision {ref}.")
        label = f"Revision of {version.revision.date_created:%Y-%m-%d %H:%M:%S}"
        return str(version.pk), label, versioning.snapshot(version.revision, machine.pk).definition()

    def compare_view(self, request, object_id):
        """Compare two revisions (or one with the machine now): differences and diagrams."""
        machine = self._machine(request, object_id)
        versions = list(self._versions(machine))
        default_a = versions[1].pk if len(versions) > 1 else "current"
        a_ref, a_label, old = self._side(machine, versions, request.GET.get("a", default_a))
        b_ref, b_label, new = self._side(machine, versions, request.GET.get("b", "current"))
        diff = versioning.diff_definitions(old, new)
        context = dict(
            self.admin_site.each_context(request), opts=self.opts, original=machine,
            title=f"Compare revisions of {machine}", versions=versions, diff=diff,
            a=a_ref, b=b_ref, a_label=a_label, b_label=b_label,
            a_diagram=_diagram(old, _changed_keys(diff, "old")),
            b_diagram=_diagram(new, _changed_keys(diff, "new")),
            history_url=self._url("history", quote(machine.pk)),
        )
        return TemplateResponse(request, TEMPLATES + "revision_compare.html", context)

    # -- revert ----------------------------------------------------------------------

    def revert_view(self, request, object_id, version_id):
        """POST: revert the machine to a revision (refused, unchanged, if rules changed)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        machine = self._machine(request, object_id, change=True)
        version = get_object_or_404(self._versions(machine), pk=version_id)
        try:
            versioning.revert(machine, version, user=request.user)
        except FlowrError as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(self._url("revision", quote(machine.pk), version.pk))
        messages.success(request, f"Machine '{machine}' was reverted to the revision of "
                                  f"{version.revision.date_created:%Y-%m-%d %H:%M:%S}; the "
                                  f"revert is recorded as a new revision. Running instances "
                                  f"are unchanged until you publish and move them.")
        return HttpResponseRedirect(self._url("change", quote(machine.pk)))

    # -- recover ---------------------------------------------------------------------

    def _deleted_version(self, request, version_id):
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        return get_object_or_404(Version.objects.get_deleted(self.model).select_related(
            "revision"), pk=version_id)

    def recover_view(self, request, version_id, extra_context=None):
        """Preview a deleted machine with its states and transitions; recover is a POST."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        version = self._deleted_version(request, version_id)
        snap = versioning.snapshot(version.revision, version.object_id)
        definition = snap.definition()
        context = dict(
            self.admin_site.each_context(request), opts=self.opts,
            title=f"Recover deleted machine {snap.machine['name']}", version=version,
            snapshot=snap, definition=definition, diagram=_diagram(definition),
            errors=versioning.snapshot_errors(snap),
            transition_names=versioning.transition_names(definition),
            confirm_url=self._url("recover_confirm", version.pk),
            recoverlist_url=self._url("recoverlist"),
        )
        context.update(extra_context or {})
        return TemplateResponse(request, TEMPLATES + "recover_preview.html", context)

    def recover_confirm_view(self, request, version_id):
        """POST: recover the deleted machine; a new revision."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        version = self._deleted_version(request, version_id)
        try:
            machine = versioning.recover(version, user=request.user)
        except FlowrError as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(self._url("recoverlist"))
        count = machine.states.count()
        messages.success(request, f"Machine '{machine}' was recovered with {count} "
                                  f"state{'s' if count != 1 else ''} and its transitions.")
        return HttpResponseRedirect(self._url("change", quote(machine.pk)))

    # -- delete guard and archive ----------------------------------------------------

    def _in_use(self, machines):
        return [m for m in machines if m.instances.exists()]

    def _in_use_message(self, machines):
        names = ", ".join(f"'{m}'" for m in machines)
        return (f"Machine{'s' if len(machines) > 1 else ''} {names} "
                f"{'have' if len(machines) > 1 else 'has'} instances and cannot be deleted; "
                f"archive {'them' if len(machines) > 1 else 'it'} instead (action "
                f"'Archive selected machines').")

    def delete_view(self, request, object_id, extra_context=None):
        machine = self.get_object(request, unquote(object_id))
        if machine is not None and self._in_use([machine]):
            messages.error(request, self._in_use_message([machine]))
            return HttpResponseRedirect(self._url("change", quote(machine.pk)))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        self.delete_queryset(request, [obj])

    def delete_queryset(self, request, queryset):
        """Delete inside a revision that first records each machine (so it can be recovered)."""
        import reversion

        machines = list(queryset)
        names = ", ".join(f"'{m}'" for m in machines)
        with revision(request.user, f"Deleted machine{'s' if len(machines) > 1 else ''} {names}."):
            for machine in machines:
                reversion.add_to_revision(machine)
            for machine in machines:
                machine.delete()

    @admin.action(permissions=["delete"], description="Delete selected machines")
    def delete_machines(self, request, queryset):
        """Django's delete_selected, refusing machines that have instances."""
        in_use = self._in_use(queryset)
        if in_use:
            self.message_user(request, self._in_use_message(in_use), messages.ERROR)
            return None
        return delete_selected(self, request, queryset)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if self.actions is not None and "_popup" not in request.GET \
                and self.has_change_permission(request):
            for name in ("archive_machines", "unarchive_machines"):
                actions.setdefault(name, self.get_action(name))
        if "delete_selected" in actions:
            actions["delete_selected"] = (self.__class__.delete_machines, "delete_selected",
                                          "Delete selected machines")
        return actions

    def _set_archived(self, request, queryset, archived):
        verb = "Archived" if archived else "Unarchived"
        machines = [m for m in queryset if m.archived != archived]
        if not machines:
            self.message_user(request, f"Nothing to do: the selected machines are already "
                                       f"{verb.lower()}.", messages.WARNING)
            return
        names = ", ".join(f"'{m}'" for m in machines)
        with revision(request.user, f"{verb} machine{'s' if len(machines) > 1 else ''} {names}."):
            for machine in machines:
                machine.archived = archived
                machine.save(update_fields=["archived", "updated_at"])
        effect = ("they start no new instances; running instances continue" if archived
                  else "they can start instances again")
        self.message_user(request, f"{verb} {names}: {effect}.", messages.SUCCESS)

    @admin.action(permissions=["change"], description="Archive selected machines")
    def archive_machines(self, request, queryset):
        """Archive: the machine starts no instances but keeps its history and instances."""
        self._set_archived(request, queryset, True)

    @admin.action(permissions=["change"], description="Unarchive selected machines")
    def unarchive_machines(self, request, queryset):
        """Unarchive: the machine may start instances again."""
        self._set_archived(request, queryset, False)


