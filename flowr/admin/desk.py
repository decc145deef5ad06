"""The admin index is the desk: sections of work, on grappelli's dashboard framework.

Settings: ``"grappelli.dashboard"`` in INSTALLED_APPS (before ``"grappelli"``, so its
``admin/index.html`` renders the dashboard) and ``GRAPPELLI_INDEX_DASHBOARD =
"flowr.admin.desk.DeskDashboard"``. The wide left column holds the registered sections
(My work, Machines, and whatever other modules add); the narrow right one grappelli's
own application list and recent actions.

Why grappelli's dashboard rather than ``AdminSite.index_template``: the index is a list
of independent parts, each needing the request (whose work, which permissions), that
other modules add to. Grappelli's dashboard is exactly that: modules built with the
request context (``init_with_context``) and rendered in grappelli's own markup (columns,
collapsible ``grp-module`` boxes), with its application list and recent actions as
ready-made modules. ``index_template`` would mean our own index template (a fork of
grappelli's) plus an ``index()`` override feeding it, for the same result.

Adding a section (e.g. "Incidents") from another module, without editing this one::

    from flowr.admin import desk

    @desk.register
    class IncidentsSection(desk.DeskSection):
        key = "incidents"                 # stable, unique
        title = "Incidents"
        order = 30                        # My work is 10, Machines 20
        template = "admin/flowr/desk/incidents.html"  # extends grappelli/dashboard/module.html
                                          # and fills {% block module_content %}

        def is_visible(self, request):    # hidden sections cost no query
            return request.user.has_perm("flowr.view_instance")

        def load(self, request):          # a constant number of queries, whatever the data
            self.rows = list(...)

``register`` works as a call or a decorator and raises SectionAlreadyRegistered on a
duplicate key; ``unregister(key)``, ``is_registered(key)`` and ``get_sections()`` complete it.
Register at import time from a module that flowr/admin/__init__.py imports (as it imports
flowr/admin/desk_sections.py, home of the built-in My work and Machines). Each request
gets fresh section objects; ``load`` sets whatever the section's template reads.
"""
from grappelli.dashboard import Dashboard, modules

from ..exceptions import FlowrError


class SectionAlreadyRegistered(FlowrError):
    """A desk section with this key is already registered."""


class DeskSection(modules.DashboardModule):
    """One part of the desk; subclass it, set `key`, `title`, `template`, write `load`."""

    key = ""
    order = 100
    column = 1
    template = "grappelli/dashboard/module.html"

    def is_visible(self, request):
        """May the user see this section? (default: yes)"""
        return True

    def load(self, request):
        """Read the section's data onto `self` (called only when visible)."""

    def init_with_context(self, context):
        if self._initialized:
            return
        request = context["request"]
        self.visible = self.is_visible(request)
        if self.visible:
            self.load(request)
        self._initialized = True

    def is_empty(self):
        return not getattr(self, "visible", False)


_SECTIONS = {}


def register(section):
    """Add a DeskSection subclass to the desk (usable as a class decorator)."""
    if not section.key:
        raise FlowrError(f"Desk section {section.__name__} needs a `key`.")
    if section.key in _SECTIONS:
        raise SectionAlreadyRegistered(
            f"A desk section with key '{section.key}' is already registered "
            f"({_SECTIONS[section.key].__name__}); unregister it first or choose another key.")
    _SECTIONS[section.key] = section
    return section


def unregister(key):
    """Remove the section registered under `key` (KeyError when there is none)."""
    del _SECTIONS[key]


def is_registered(key):
    return key in _SECTIONS


def get_sections():
    """The registered section classes, in desk order."""
    return sorted(_SECTIONS.values(), key=lambda s: (s.column, s.order, s.key))


class DeskDashboard(Dashboard):
    """The admin index: registered sections left, applications and recent actions right."""

    title = "Desk"
    columns = 2

    class Media:
        css = {"all": ("flowr/flowr_admin.css",)}

    def init_with_context(self, context):
        self.children.extend(section() for section in get_sections())
        self.children += [
            modules.ModelList("Flowr", column=2, collapsible=False, models=("flowr.*",)),
            modules.AppList("Administration", column=2, collapsible=False,
                            exclude=("flowr.*",)),
            modules.RecentActions("My recent actions", limit=8, column=2,
                                  collapsible=False),
        ]
