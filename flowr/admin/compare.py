"""Comparing published versions of a machine, and the preview shown before publishing.

Both pages show a flowr.comparison.Comparison: states (matched by stable key), transitions,
settings and options that differ, both diagrams with the differences highlighted, and the
running instances of the older side sitting in each removed or changed state. The compare
page only reads; the publish preview's POST publishes (refused if the draft changed since
the page was shown).
"""
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from .. import builder, comparison, engine
from ..diagrams import definition_svg
from ..exceptions import FlowrError
from ..rules import is_registered
from .instance_filters import MACHINE_PARAM

TEMPLATES = "admin/flowr/machine/"


def _css(line):
    for prefix, css in (("Added", "flowr-added"), ("Removed", "flowr-removed")):
        if line.startswith(prefix):
            return css
    return "flowr-changed"


def comparison_context(machine, version, result):
    """What _version_comparison.html shows of `result` (the older side is `version`)."""
    base = reverse("admin:flowr_instance_changelist")
    for state in result.states:  # the list of the running instances sitting in it
        state.link = base + "?" + urlencode({MACHINE_PARAM: machine.pk, "version": version.pk,
                                             "state": state.key})
    return {"comparison": result, "lines": [(_css(line), line) for line in result.lines()],
            "old_svg": definition_svg(result.old, result.marks("old")),
            "new_svg": definition_svg(result.new, result.marks("new"))}


class MachineCompareMixin:
    """Machine admin URLs: compare two versions; preview (GET) and publish (POST)."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/versions/compare/", view(self.compare_versions_view),
                 name="flowr_machine_compare_versions"),
            path("<path:object_id>/builder/publish/preview/", view(self.publish_preview_view),
                 name="flowr_machine_publish_preview"),
        ] + super().get_urls()

    def _compare_machine(self, request, object_id):
        machine = self.get_object(request, unquote(object_id))
        if machine is None:
            raise Http404(f"No machine with id {object_id[:40]!r}.")
        if not self.has_view_or_change_permission(request, machine):
            raise PermissionDenied
        return machine

    def _context(self, request, machine, **extra):
        return {**self.admin_site.each_context(request), "opts": self.opts,
                "original": machine, **extra}

    # -- compare two versions ---------------------------------------------------------

    def compare_versions_view(self, request, object_id):
        """GET: compare versions ?a=NUMBER and ?b=NUMBER (default: the latest two)."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        machine = self._compare_machine(request, object_id)
        versions = list(machine.versions.select_related("published_by")
                        .defer("definition").order_by("-number"))
        if not versions:
            messages.info(request, f"Machine '{machine}' has no published version to compare.")
            return HttpResponseRedirect(reverse("admin:flowr_machine_change", args=[machine.pk]))
        a = _pick(machine, versions, request.GET.get("a"), versions[min(1, len(versions) - 1)])
        b = _pick(machine, versions, request.GET.get("b"), versions[0])
        pair = {v.pk: v for v in machine.versions.filter(pk__in=[a.pk, b.pk])}
        result = comparison.compare_versions(pair[a.pk], pair[b.pk])
        move_url = (reverse("admin:flowr_instance_move") + f"?version={a.pk}&target={b.pk}"
                    if a.pk != b.pk and any(s.running for s in result.states) else "")
        context = self._context(
            request, machine, title=f"Compare versions of {machine}", versions=versions,
            a=a, b=b, move_url=move_url, old_title=f"v{a.number}", new_title=f"v{b.number}",
            **comparison_context(machine, a, result))
        return TemplateResponse(request, TEMPLATES + "version_compare.html", context)

    # -- publish, with a preview --------------------------------------------------------

    def publish_preview_view(self, request, object_id):
        """GET: what publishing would change and whom it affects; POST: publish."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        machine = self._compare_machine(request, object_id)
        if request.method == "POST":
            return self._publish(request, machine)
        graph = builder.MachineGraph.load(machine)
        registered = is_registered(machine.rule_set.key)
        errors = graph.errors() if registered else [
            f"Rule set '{machine.rule_set.key}' is no longer registered in code."]
        latest, result = comparison.compare_draft(machine)
        context = self._context(
            request, machine, title=f"Publish {machine}?", latest=latest,
            errors=errors, draft=_draft_checksum(graph) if not errors else "",
            can_publish=self.has_change_permission(request, machine) and not errors,
            next_number=(latest.number + 1) if latest else 1,
            unchanged=bool(result and not result.has_changes),
            state_count=len(graph.states), old_title=f"v{latest.number}" if latest else "",
            new_title="the draft")
        if result is not None:
            context.update(comparison_context(machine, latest, result))
        return TemplateResponse(request, TEMPLATES + "publish_preview.html", context)

    def _publish(self, request, machine):
        if not self.has_change_permission(request, machine):
            raise PermissionDenied
        back = HttpResponseRedirect(reverse("admin:flowr_machine_publish_preview",
                                            args=[machine.pk]))
        graph = builder.MachineGraph.load(machine)
        if graph.root is not None and request.POST.get("draft") != _draft_checksum(graph):
            messages.warning(request, f"Machine '{machine}' changed since this page was "
                             f"shown; review the changes again before publishing. Nothing "
                             f"was published.")
            return back
        try:
            latest, result = comparison.compare_draft(machine)
            version = engine.publish(machine, user=request.user)
        except FlowrError as exc:
            messages.error(request, str(exc))
            return back
        if not version.is_new:
            messages.info(request, f"Nothing changed since version {version.number}; no new "
                          f"version was created.")
        else:
            messages.success(request, _published_message(machine, version, latest, result))
        return HttpResponseRedirect(reverse("admin:flowr_machine_change", args=[machine.pk]))


def _pick(machine, versions, ref, default):
    if ref in (None, ""):
        return default
    found = next((v for v in versions if str(v.number) == ref), None)
    if found is None:
        raise Http404(f"Machine '{machine}' has no version {ref[:20]!r}.")
    return found


def _draft_checksum(graph):
    return engine.checksum(engine.definition_of(graph)) if graph.root is not None else ""


def _published_message(machine, version, latest, result):
    text = f"Published version {version.number} of '{machine}'."
    affected = result.affected if result is not None else []
    if not affected:
        return text
    count = sum(s.running for s in affected)
    url = reverse("admin:flowr_instance_move") + f"?version={latest.pk}&target={version.pk}"
    return format_html(
        '{} {} running instance{} on v{} sit in states it removes or changes: '
        '<a href="{}">move them to version {}…</a>', text, count, "s" if count != 1 else "",
        latest.number, url, version.number)
