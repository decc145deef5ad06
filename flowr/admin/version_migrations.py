"""Migrations in the admin: a list, a result page that follows a running migration, and
revert (preview, then POST) and continue (after a failure) for a migration as a whole.

Migrations are records: never added, edited or deleted by hand. Reverting and continuing
need the permission to change instances (the same as moving them).
"""
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from .. import migrations_api
from ..exceptions import FlowrError
from ..models import VersionMigration, VersionMigrationItem
from .moves import INLINE_LIMIT

ITEMS_PER_PAGE = 100
CHANGE_INSTANCES = "flowr.change_instance"
Item = VersionMigrationItem


def _badge(status, text=None):
    css = {"done": "active", "failed": "cancelled", "queued": "suspended",
           "running": "suspended"}.get(status, "finished")
    return format_html('<span class="flowr-status flowr-status-{}">{}</span>', css,
                       text or status)


@admin.register(VersionMigration)
class VersionMigrationAdmin(admin.ModelAdmin):
    """Recorded migrations of running instances between versions."""

    list_display = ["label", "machine", "versions", "status_label", "progress", "result",
                    "created_by", "created_at", "revert_label"]
    list_display_links = ["label"]
    list_filter = ["status", "revert_status", "machine"]
    list_select_related = ["machine", "target", "created_by"]
    search_fields = ["machine__name", "note"]

    class Media:
        css = {"all": ["flowr/flowr_admin.css"]}

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a record; revert and continue have their own views

    def has_delete_permission(self, request, obj=None):
        return False

    # -- columns --------------------------------------------------------------------------
    @admin.display(description="migration", ordering="id")
    def label(self, obj):
        return f"#{obj.pk}"

    @admin.display(description="versions")
    def versions(self, obj):
        return f"{obj.sources_label} → v{obj.target.number}"

    @admin.display(description="status", ordering="status")
    def status_label(self, obj):
        return _badge(obj.status)

    @admin.display(description="progress")
    def progress(self, obj):
        return f"{obj.processed} / {obj.to_process}"

    @admin.display(description="result")
    def result(self, obj):
        return (f"{obj.migrated} migrated, {obj.cancelled} cancelled, {obj.left} left, "
                f"{obj.refused} refused")

    @admin.display(description="revert", ordering="revert_status")
    def revert_label(self, obj):
        if not obj.revert_status:
            return "—"
        return _badge(obj.revert_status, f"{obj.revert_status}: {obj.reverted} back, "
                                         f"{obj.kept} kept")

    # -- views ----------------------------------------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:migration_id>/revert/", view(self.revert_view),
                 name="flowr_versionmigration_revert"),
            path("<int:migration_id>/continue/", view(self.continue_view),
                 name="flowr_versionmigration_continue"),
        ] + super().get_urls()

    def _migration(self, request, object_id):
        migration = self.get_object(request, unquote(str(object_id)))
        if migration is None:
            raise Http404(f"No migration {str(object_id)[:20]!r}.")
        if not self.has_view_permission(request, migration):
            raise PermissionDenied
        return migration

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """GET: the migration's result page (refreshes itself while it runs)."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        migration = self._migration(request, object_id)
        status = request.GET.get("status", "")
        if status not in dict(Item.STATUS_CHOICES):
            status = ""
        items = Item.objects.filter(migration=migration)
        counts = dict(items.order_by().values_list("status").annotate(n=Count("pk")))
        shown = items.filter(status=status) if status else items
        total = counts.get(status, 0) if status else sum(counts.values())
        pages = max(1, -(-total // ITEMS_PER_PAGE))
        page = request.GET.get("page", "1")
        page = min(int(page), pages) if page.isdigit() and 0 < len(page) < 7 and page != "0" \
            else 1
        rows = list(shown.select_related("instance", "from_version", "to_version")
                    .order_by("id")[(page - 1) * ITEMS_PER_PAGE:page * ITEMS_PER_PAGE])
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": migration,
            "title": f"Migration #{migration.pk} of {migration.machine}",
            "migration": migration, "items": rows, "counts": counts,
            "status_choices": [(s, label, counts.get(s, 0)) for s, label in Item.STATUS_CHOICES
                               if counts.get(s)],
            "status": status, "page": page, "pages": pages,
            "can_act": request.user.has_perm(CHANGE_INSTANCES),
            "percent": _percent(migration.processed, migration.to_process),
            "revert_percent": _percent(migration.revert_processed, migration.revert_total),
            "mapping": sorted(migration.mapping.values(), key=lambda m: m.get("name", "")),
        }
        return TemplateResponse(request, "admin/flowr/versionmigration/detail.html", context)

    def _acting(self, request, migration_id):
        migration = self._migration(request, migration_id)
        if not request.user.has_perm(CHANGE_INSTANCES):
            raise PermissionDenied
        return migration

    def _detail(self, migration):
        return HttpResponseRedirect(reverse("admin:flowr_versionmigration_change",
                                            args=[migration.pk]))

    def revert_view(self, request, migration_id):
        """GET: what reverting would do; POST: revert (here when small, else as a task)."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        migration = self._acting(request, migration_id)
        if request.method == "GET":
            back, changed = migrations_api.revert_preview(migration)
            context = {**self.admin_site.each_context(request), "opts": self.opts,
                       "original": migration, "migration": migration, "back": back,
                       "changed": changed, "title": f"Revert migration #{migration.pk}?",
                       "kept_total": migration.migrated + migration.cancelled - back}
            return TemplateResponse(request, "admin/flowr/versionmigration/revert.html",
                                    context)
        background = migration.migrated + migration.cancelled > INLINE_LIMIT
        try:
            migration = migrations_api.revert(migration, user=request.user,
                                              background=background)
        except FlowrError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return self._detail(migration)
        if background:
            text = (f"Reverting migration #{migration.pk}: a worker puts the instances back "
                    f"in batches; this page follows its progress.")
        else:
            text = (f"Reverted migration #{migration.pk}: {migration.reverted} instance(s) "
                    f"went back; {migration.kept} changed since and were left alone.")
        self.message_user(request, text, messages.SUCCESS if migration.revert_status !=
                          VersionMigration.FAILED else messages.ERROR)
        return self._detail(migration)

    def continue_view(self, request, migration_id):
        """POST: continue a failed migration with its untouched (pending) instances."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        migration = self._acting(request, migration_id)
        pending = migration.to_process - migration.processed
        try:
            migration = migrations_api.resume(migration, background=pending > INLINE_LIMIT)
        except FlowrError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return self._detail(migration)
        self.message_user(request, f"Continuing migration #{migration.pk} with its {pending} "
                                   f"untouched instance(s).", messages.SUCCESS)
        return self._detail(migration)


def _percent(done, total):
    return 100 if not total else min(100, int(done * 100 / total))
