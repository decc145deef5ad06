"""The crawler: every URL pattern of the site and the admin, with hostile values for each
path parameter, every list filter, search, ordering and page parameter of every
changelist, and hostile fields in every form, as a superuser and as view-only staff, by
GET and by POST (with a valid CSRF token). No request may answer 500 or raise, and no GET
may change the database.

The URL patterns come from the root URLconf, the real ids from links on the pages (a
first crawl as a superuser), the list filters from each ModelAdmin's changelist and the
form fields from the forms on the pages: URLs, filters and forms added later are covered
without changing this file. Each POST runs in a transaction rolled back afterwards, so
every request sees the same data.
"""
import time
from collections import defaultdict
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

import pytest
from django.contrib import admin
from django.contrib.admin.views.main import ORDER_VAR, PAGE_VAR, SEARCH_VAR
from django.contrib.auth.models import Permission
from django.core.signals import got_request_exception
from django.db import transaction
from django.test import Client, RequestFactory
from django.urls import reverse

from flowr import builder, migrations_api
from tests.crawl import WriteGuard, match, read_page, url_patterns

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

HOSTILE = ["abc", "0", "-1", "99999999999999", "%00", "x" * 5000,
           "0c6f1d1e-7a45-4b8e-9a59-2f0a3f6c1b11"]  # a UUID no row has
# In form fields and query strings the NUL is the character itself.
HOSTILE_FIELDS = [v.replace("%00", "\x00") for v in HOSTILE] + [""]
# One value of each kind that fails differently: text where a number is expected, NUL,
# an integer no column holds. Each form field alone gets these; so do view-only staff's
# path parameters and list filters (the code the superuser's full pass ran, up to a
# permission check), and its forms get all their fields hostile at once.
HOSTILE_FEW = ["abc", "\x00", "99999999999999"]
MAX_PAGES = 400  # discovery crawl
PER_PATTERN = 3  # distinct real URLs kept per pattern


# -- data and users -----------------------------------------------------------------------

@pytest.fixture
def site_data(settings, demo_machines, django_user_model):
    """The demo machines and instances, some history, a deleted machine, two users."""
    # Hostile password forms hash what they get: a fast hasher keeps the crawl quick.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    superuser = django_user_model.objects.create_superuser("crawler", "c@example.com", "pw")
    viewer = django_user_model.objects.create_user("viewer", "v@example.com", "pw",
                                                   is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    for machine in demo_machines.values():
        for instance in machine.instances.all()[:2]:
            try:
                instance.step(to=instance.allowed_steps()[0].key, user=superuser)
            except Exception:  # noqa: BLE001 - a guard may refuse; history is optional here
                pass
    example = demo_machines["flowr_example"]  # a second version and a migration (issue 16)
    builder.update_state(example.states.get(name="C"), name="C renamed")
    migrations_api.migrate(migrations_api.plan_migration(example, example.publish()),
                           user=superuser)
    with builder.revision(user=superuser, comment="for the recover list"):
        gone = builder.create_machine("flowr_example", "Deleted example")
    with builder.revision(user=superuser, comment="deleted"):
        gone.delete()
    return {"superuser": superuser, "viewer": viewer}


class Crawler:
    """A logged-in test client that records every request and every failure."""

    def __init__(self, user):
        self.client = Client(enforce_csrf_checks=True, raise_request_exception=False)
        self.client.force_login(user)
        self.client.get(reverse("admin:index"))  # sets the CSRF cookie
        self.user, self.requests, self.failures = user.username, 0, []
        self.patterns_hit = set()
        self._exception = None
        got_request_exception.connect(self._record_exception)

    def close(self):
        got_request_exception.disconnect(self._record_exception)

    def _record_exception(self, sender, request=None, **kwargs):
        import sys

        self._exception = repr(sys.exc_info()[1])

    def get(self, url, pattern=None):
        """GET `url`: no 500, no uncaught exception, no database write."""
        self._exception = None
        with WriteGuard() as guard:
            response = self.client.get(url)
        self._check("GET", url, response, pattern)
        if guard.writes:
            self.failures.append(f"{self.user} GET {_short(url)} wrote: "
                                 f"{_short(guard.writes[0])}")
        return response

    def post(self, url, data=None, pattern=None):
        """POST `url` with a valid CSRF token; rolled back afterwards."""
        cookies = SimpleCookie(self.client.cookies.output(header="", sep="\n"))
        data = {**(data or {}), "csrfmiddlewaretoken": self.client.cookies["csrftoken"].value}
        self._exception = None
        with transaction.atomic():
            response = self.client.post(url, data)
            transaction.set_rollback(True)
        self.client.cookies = cookies  # a POST to logout must not end the crawl
        self._check("POST", url, response, pattern)
        return response

    def _check(self, method, url, response, pattern):
        self.requests += 1
        if pattern is not None:
            self.patterns_hit.add(pattern.regex)
        if response.status_code >= 500 or self._exception:
            self.failures.append(f"{self.user} {method} {_short(url)} -> "
                                 f"{response.status_code} {_short(self._exception or '')}")


def _short(text, limit=160):
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} chars)"


# -- discovery: real ids, filters and forms from the pages --------------------------------

def discover(crawler, patterns):
    """Crawl the site's pages; returns ({pattern: [values]}, [query URLs], [forms])."""
    todo = ["/admin/"] + [p.url({}) for p in patterns if not p.params]
    seen, real, queries, forms = set(), defaultdict(list), [], []
    per_pattern = defaultdict(int)
    while todo and len(seen) < MAX_PAGES:
        url = todo.pop(0)
        pattern, values = match(patterns, url.split("?")[0])
        if url in seen or pattern is None or per_pattern[pattern.regex] >= PER_PATTERN:
            continue
        seen.add(url)
        per_pattern[pattern.regex] += 1
        if values and values not in real[pattern]:
            real[pattern].append(values)
        if "?" in url:
            queries.append(url)
        response = crawler.get(url, pattern)
        if "html" not in response.get("Content-Type", ""):
            continue
        links, page_forms = read_page(url, response.content.decode("utf-8", "replace"))
        todo += [link for link in links if link not in seen]
        forms += [form for form in page_forms if form.method == "post"]
    return real, queries, forms


def variants(pattern, real, values=HOSTILE):
    """URLs of `pattern`: its real ones, and each parameter in turn made hostile."""
    bases = real.get(pattern) or [{name: "1" for name in pattern.params}]
    urls = {pattern.url(base) for base in bases if pattern.params}
    if not pattern.params:
        return {pattern.url({})}
    for base in bases[:2]:
        for name in pattern.params:
            urls |= {pattern.url({**base, name: value}) for value in values}
    return urls


# -- changelists: every filter, search, ordering and page parameter ------------------------

def changelist_parameters(model_admin, user):
    """The query parameters a changelist understands (list filters, q, o, p, e)."""
    url = reverse(f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}"
                  f"_changelist")
    request = RequestFactory().get(url)
    request.user = user
    changelist = model_admin.get_changelist_instance(request)
    names = {SEARCH_VAR, ORDER_VAR, PAGE_VAR, "e"}
    for spec in changelist.filter_specs:
        names |= set(spec.expected_parameters())
    return url, sorted(names)


def hostile_filters(crawler, queries, values):
    """Every changelist parameter with each hostile value, alone and in real queries."""
    for model_admin in admin.site._registry.values():
        url, names = changelist_parameters(model_admin, crawler.user_obj)
        real = [q for q in queries if q.split("?")[0] == url][:2]
        for name in names:
            for value in values:
                crawler.get(f"{url}?{urlencode({name: value})}")
            for query in real:  # e.g. a machine chosen, then a hostile state
                for value in HOSTILE_FEW[:2]:
                    crawler.get(_with(query, name, value))


def _with(url, name, value):
    """`url` with the query parameter `name` set to `value` (replacing it)."""
    path, _, query = url.partition("?")
    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != name]
    return f"{path}?{urlencode([*params, (name, value)])}"


def hostile_actions(crawler):
    """Every changelist action with malformed and real selections."""
    for model, model_admin in admin.site._registry.items():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        request = RequestFactory().get(url)
        request.user = crawler.user_obj
        real = [str(pk) for pk in model._default_manager.values_list("pk", flat=True)[:2]]
        for action in [*model_admin.get_actions(request), "no_such_action"]:
            for selected in [*HOSTILE_FIELDS, *real]:
                crawler.post(url, {"action": action, "_selected_action": selected,
                                   "index": "0"})
            crawler.post(url, {"action": action, "select_across": "1", "index": "0",
                               "_selected_action": real[:1]})


def hostile_forms(crawler, forms, patterns, each_field=True):
    """Each kind of form: every field hostile at once, then (`each_field`) each alone."""
    done = set()
    for form in forms:
        pattern, _ = match(patterns, form.action.split("?")[0])
        signature = (pattern.regex if pattern else form.action, tuple(sorted(form.fields)))
        if signature in done:
            continue
        done.add(signature)
        fields = {k: v for k, v in form.fields.items() if k != "csrfmiddlewaretoken"}
        crawler.post(form.action, fields, pattern)
        for value in HOSTILE_FIELDS:
            crawler.post(form.action, dict.fromkeys(fields, value), pattern)
        # Alone: the data fields; the admin's own controls (_save, _continue, initial-…)
        # were hostile in the all-at-once pass.
        for name in [n for n in fields if not n.startswith(("_", "initial-"))] \
                if each_field else ():
            for value in HOSTILE_FEW:
                crawler.post(form.action, {**fields, name: value}, pattern)


# -- the test -------------------------------------------------------------------------------

def database_rows():
    """Rows per table of every model: compared before and after the GET passes."""
    from django.apps import apps
    from django.db import connection

    tables = set(connection.introspection.table_names()) - {"django_session"}
    return {model._meta.db_table: model._base_manager.count()
            for model in apps.get_models() if model._meta.db_table in tables}


@pytest.fixture(autouse=True)
def _quiet_request_log():
    """Thousands of 404s and 403s are expected; failures are collected by the test."""
    import logging

    loggers = [logging.getLogger(name) for name in ("django.request", "django.security")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def crawl_as(user, patterns, real, queries, forms, thorough):
    """Every hostile request as `user`; returns the crawler with its counts and failures."""
    crawler = Crawler(user)
    crawler.user_obj = user
    values = HOSTILE if thorough else [v.replace("\x00", "%00") for v in HOSTILE_FEW]
    urls = [(pattern, url) for pattern in patterns
            for url in sorted(variants(pattern, real, values))]
    before = database_rows()
    for pattern, url in urls:
        crawler.get(url, pattern)
    hostile_filters(crawler, queries, HOSTILE_FIELDS if thorough else HOSTILE_FEW)
    assert database_rows() == before, "a GET changed the database"
    for pattern, url in urls:
        crawler.post(url, pattern=pattern)
    hostile_actions(crawler)
    hostile_forms(crawler, forms, patterns, each_field=thorough)
    crawler.close()
    return crawler


def test_no_url_answers_500_and_no_get_changes_anything(site_data, capsys):
    started, cpu = time.monotonic(), time.process_time()
    patterns = url_patterns()
    names = {pattern.name for pattern in patterns}
    assert {"flowr_instance_changelist", "flowr_machine_change", "healthz"} <= names
    discoverer = Crawler(site_data["superuser"])
    real, queries, forms = discover(discoverer, patterns)
    discoverer.close()
    crawlers = [discoverer] + [
        crawl_as(site_data[who], patterns, real, queries, forms, thorough)
        for who, thorough in (("superuser", True), ("viewer", False))]
    total = sum(crawler.requests for crawler in crawlers)
    hit = set().union(*(crawler.patterns_hit for crawler in crawlers))
    with capsys.disabled():
        print(f"\ncrawler: {total} requests ({crawlers[1].requests} as superuser, "
              f"{crawlers[2].requests} as view-only staff, {discoverer.requests} discovering), "
              f"{len(hit)} of {len(patterns)} URL patterns, {len(forms)} forms, "
              f"{len(queries)} real query strings, {time.monotonic() - started:.1f} s "
              f"({time.process_time() - cpu:.1f} s CPU)")
    failures = [failure for crawler in crawlers for failure in crawler.failures]
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:80])
    assert hit == {p.regex for p in patterns}
