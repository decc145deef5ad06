"""Diagram pages and downloads: a published version's page (with its instance counts) and
the machine, version and instance diagrams as SVG, Mermaid and Graphviz DOT files.

Downloads are GETs that change nothing; they need the view permission of the machine
(or of the instance). Unknown formats, versions and instances answer 404.
"""
import re

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import path, reverse

from .. import builder, diagram_export, diagrams
from ..models import Instance
from .builder_page import active_counts, instances_url

FORMATS = {
    "svg": ("SVG", "image/svg+xml", "svg"),
    "mermaid": ("Mermaid", "text/plain; charset=utf-8", "mmd"),
    "dot": ("Graphviz DOT", "text/vnd.graphviz; charset=utf-8", "dot"),
}


def _file_name(*parts):
    text = "-".join(str(p) for p in parts if p != "")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:100] or "diagram"


def download(nodes, edges, fmt, name, title="", current=None):
    """An attachment response holding the diagram in `fmt` (svg, mermaid or dot)."""
    if fmt not in FORMATS:
        raise Http404(f"Unknown diagram format '{fmt[:20]}'; use svg, mermaid or dot.")
    _, content_type, ext = FORMATS[fmt]
    if fmt == "svg":
        body = diagrams.svg_document(nodes, edges, current=current)
    elif fmt == "mermaid":
        body = diagram_export.mermaid(nodes, edges, current=current, title=title)
    else:
        body = diagram_export.dot(nodes, edges, current=current, title=title)
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}.{ext}"'
    return response


def links(url_name, *args):
    """[(label, url)] of the downloads of one diagram, for includes/downloads.html."""
    return [(label, reverse(url_name, args=[*args, fmt]))
            for fmt, (label, _, _) in FORMATS.items()]


def _get(request):
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET"])
    return None


def _machine(model_admin, request, object_id):
    machine = model_admin.get_object(request, unquote(object_id))
    if machine is None:
        raise Http404(f"No machine with ID “{str(object_id)[:40]}”.")
    if not model_admin.has_view_or_change_permission(request, machine):
        raise PermissionDenied
    return machine


def _version(machine, number):
    version = machine.versions.filter(number=number).first()
    if version is None:
        raise Http404(f"Machine '{machine}' has no version {number}.")
    return version


def machine_download(model_admin, request, object_id, fmt):
    """GET: the machine's current (draft) graph as a file."""
    machine = _machine(model_admin, request, object_id)
    nodes, edges = diagrams.machine_nodes(builder.MachineGraph.load(machine))
    return _get(request) or download(nodes, edges, fmt, _file_name(machine.name, "draft"),
                                     title=machine.name)


def version_download(model_admin, request, object_id, number, fmt):
    """GET: a published version's graph as a file."""
    machine = _machine(model_admin, request, object_id)
    version = _version(machine, number)
    nodes, edges = diagrams.version_nodes(version)
    return _get(request) or download(nodes, edges, fmt, _file_name(machine.name,
                                     f"v{number}"), title=f"{machine.name} v{number}")


def version_page(model_admin, request, object_id, number):
    """GET: a published version's diagram, with how many active instances sit in each state."""
    refused = _get(request)
    if refused:
        return refused
    machine = _machine(model_admin, request, object_id)
    version = _version(machine, number)
    counts = active_counts(machine, version)
    context = {
        **model_admin.admin_site.each_context(request), "opts": model_admin.opts,
        "original": machine, "machine": machine, "version": version,
        "title": f"{machine} — version {version.number}",
        "diagram": diagrams.version_svg(version, counts=counts,
                                        count_url=instances_url(machine, version)),
        "active_total": sum(counts.values()), "state_count": len(version.graph.names),
        "downloads": links("admin:flowr_machine_version_diagram", machine.pk, number),
    }
    return TemplateResponse(request, "admin/flowr/machine/version_page.html", context)


def instance_download(model_admin, request, instance_id, fmt):
    """GET: an instance's version graph with its current state highlighted, as a file."""
    if not request.user.has_perm("flowr.view_instance") and \
            not request.user.has_perm("flowr.change_instance"):
        raise PermissionDenied
    try:
        instance = Instance.objects.select_related("version", "machine").filter(
            pk=instance_id).first()
    except ValidationError:
        instance = None
    if instance is None:
        raise Http404("No such instance.")
    nodes, edges = diagrams.version_nodes(instance.version)
    name = _file_name(instance.machine.name, f"v{instance.version.number}",
                      str(instance.pk)[:8])
    return _get(request) or download(nodes, edges, fmt, name, current=instance.state_key,
                                     title=f"{instance.machine.name} #{str(instance.pk)[:8]}")


def urls(model_admin):
    """URL patterns of the diagram pages and downloads (prepend them to the admin's own)."""
    def wrap(view):
        def bound(request, *args, **kwargs):
            return view(model_admin, request, *args, **kwargs)
        return model_admin.admin_site.admin_view(bound)

    # Most specific first: <path:object_id> would also match "1/versions/2" or "instances/…".
    return [
        path("instances/<uuid:instance_id>/diagram/<str:fmt>/", wrap(instance_download),
             name="flowr_instance_diagram"),
        path("<path:object_id>/versions/<int:number>/diagram/<str:fmt>/",
             wrap(version_download), name="flowr_machine_version_diagram"),
        path("<path:object_id>/versions/<int:number>/", wrap(version_page),
             name="flowr_machine_version"),
        path("<path:object_id>/diagram/<str:fmt>/", wrap(machine_download),
             name="flowr_machine_diagram"),
    ]
