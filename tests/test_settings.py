"""Production settings from the environment, the demo-login deploy check and logging."""
import io
import json
import logging
import os
import subprocess
import sys

import pytest
from django.core import checks
from django.core.exceptions import PermissionDenied
from django.urls import path

from flowr.checks import check_demo_login
from flowr.demo.setup import DEMO_PASSWORD, DEMO_USERNAME

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "production-secret-" + "0123456789abcdef" * 3,
              "ALLOWED_HOSTS": "flowr.example.com"}


def site_settings(**env):
    """The named site settings as a fresh process reads them from `env`."""
    names = ["DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER",
             "SECURE_SSL_REDIRECT"]
    code = ("import json; from django.conf import settings as s; "
            f"print(json.dumps({{n: getattr(s, n, None) for n in {names!r}}}))")
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("FLOWR_SECURE", "FLOWR_TRUST", "SECURE_", "DEBUG"))}
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "flowr_site.settings", **env},
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cookies_are_secure_in_production_unless_switched_off():
    assert site_settings(**PRODUCTION)["SESSION_COOKIE_SECURE"] is True
    plain_http = site_settings(**PRODUCTION, FLOWR_SECURE_COOKIES="0", SECURE_SSL_REDIRECT="0")
    assert plain_http["SESSION_COOKIE_SECURE"] is False
    assert plain_http["CSRF_COOKIE_SECURE"] is False and plain_http["SECURE_SSL_REDIRECT"] is False
    assert site_settings()["SESSION_COOKIE_SECURE"] is False  # development over http
    assert site_settings(FLOWR_SECURE_COOKIES="1")["CSRF_COOKIE_SECURE"] is True


def test_x_forwarded_proto_is_trusted_only_when_a_proxy_is_declared():
    assert site_settings(**PRODUCTION)["SECURE_PROXY_SSL_HEADER"] is None
    assert site_settings()["SECURE_PROXY_SSL_HEADER"] is None
    declared = site_settings(**PRODUCTION, FLOWR_TRUST_X_FORWARDED_PROTO="1")
    assert declared["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_a_spoofed_forwarded_proto_is_not_believed(client, settings):
    """Without a declared proxy, `X-Forwarded-Proto: https` over http is still http."""
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/healthz", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 301 and response["Location"].startswith("https://")
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client.get("/healthz", HTTP_X_FORWARDED_PROTO="https").status_code != 301


# -- the demo login in production ------------------------------------------------------

@pytest.fixture
def demo_login(django_user_model):
    return django_user_model.objects.create_superuser(DEMO_USERNAME, "", DEMO_PASSWORD)


def test_deploy_check_warns_when_the_demo_login_works_with_debug_off(demo_login, settings):
    settings.DEBUG = False
    (warning,) = check_demo_login(None)
    assert warning.id == "flowr.W001" and isinstance(warning, checks.Warning)
    assert "'demo' / 'flowr-demo'" in warning.msg and "as a superuser" in warning.msg
    found = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    assert "flowr.W001" in {message.id for message in found}
    assert "flowr.W001" not in {m.id for m in checks.run_checks(tags=[checks.Tags.security])}
    demo_login.refresh_from_db()
    assert demo_login.check_password(DEMO_PASSWORD)  # the check wrote nothing


def test_deploy_check_is_quiet_in_demo_mode_or_once_the_login_is_gone(demo_login, settings):
    settings.DEBUG = True
    assert check_demo_login(None) == []
    settings.DEBUG = False
    demo_login.set_password("a new and private password")
    demo_login.save()
    assert check_demo_login(None) == []
    demo_login.delete()
    assert check_demo_login(None) == []


def test_deploy_check_does_not_create_a_missing_sqlite_file(tmp_path):
    missing = tmp_path / "never-created.sqlite3"
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, **PRODUCTION,
             "FLOWR_SQLITE_PATH": str(missing)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert not missing.exists()


# -- logging: a 403 is one line, a 500 is logged once ---------------------------------

def _forbidden(request):
    raise PermissionDenied("not yours")


def _broken(request):
    raise RuntimeError("a bug")


urlpatterns = [path("forbidden/", _forbidden), path("broken/", _broken)]


@pytest.fixture
def console_log():
    """What the site's console handler writes, as text."""
    (handler,) = [h for h in logging.getLogger().handlers
                  if type(h) is logging.StreamHandler]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.mark.parametrize("debug", [False, True])
def test_403_is_logged_without_traceback_and_500_once(client, settings, console_log, debug):
    settings.ROOT_URLCONF = __name__
    settings.DEBUG = debug
    client.raise_request_exception = False
    assert client.get("/forbidden/").status_code == 403
    logged = console_log.getvalue()
    assert logged.count("Forbidden (Permission denied): /forbidden/") == 1
    assert "Traceback" not in logged
    assert client.get("/broken/").status_code == 500
    logged = console_log.getvalue()
    assert logged.count("Internal Server Error: /broken/") == 1
    assert logged.count("Traceback") == 1 and "RuntimeError: a bug" in logged


def test_refused_csrf_token_is_one_line(client, admin_user, console_log):
    client.handler.enforce_csrf_checks = True
    client.force_login(admin_user)
    assert client.post("/admin/logout/").status_code == 403
    assert "Forbidden (CSRF" in console_log.getvalue()
    assert "Traceback" not in console_log.getvalue()
