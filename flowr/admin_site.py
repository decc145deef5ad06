"""Flowr's admin site: Django's, with one guard added to every registered ModelAdmin.

Outside the flowr.admin package on purpose: loading the default site must not import
the ModelAdmins, which register themselves on that very site.
"""
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters


class SafeInputMixin:
    """Malformed list parameters and selections get the admin's answers, never a 500.

    Django's admin filters `pk__in=<posted ids>` unchecked ("abc" for a numeric or UUID
    key is a 500) and passes list-filter values to the database as they come (a NUL is
    a 500 on PostgreSQL, which cannot hold one in text). Mixed into every ModelAdmin
    (Flowr's, auth's, any app's) by the site.
    """

    def get_changelist_instance(self, request):
        if any("\x00" in key or any("\x00" in value for value in values)
               for key, values in request.GET.lists()):
            # The changelist answers this with its "?e=1" redirect, as for any bad filter.
            self.message_user(request, "A search or filter value held a NUL character "
                                       "(\\u0000), which no text can hold; it was ignored.",
                              messages.ERROR)
            raise IncorrectLookupParameters("A list parameter holds a NUL character.")
        return super().get_changelist_instance(request)

    def response_action(self, request, queryset):
        from .admin._ids import parse_pks

        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if parse_pks(self.model, selected) is None:
            self.message_user(request, f"The selection holds an id that is not a "
                                       f"{self.opts.verbose_name} id; nothing was done. Select "
                                       f"the rows again.", messages.ERROR)
            return None  # the changelist then redirects back to itself
        return super().response_action(request, queryset)


class FlowrAdminSite(admin.AdminSite):
    """The default admin site (flowr_site.apps.FlowrAdminConfig names it)."""

    site_header = site_title = "Flowr"
    index_title = "State machines"

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, SafeInputMixin):
            admin_class = type(admin_class.__name__, (SafeInputMixin, admin_class),
                               {"__module__": admin_class.__module__,
                                "__doc__": admin_class.__doc__})
        super().register(model_or_iterable, admin_class, **options)
