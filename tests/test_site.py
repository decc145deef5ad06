"""The site foundation: redirects, login, grappelli, health, production settings."""
import json
import os
import subprocess
import sys

import pytest
from django.urls import reverse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_root_redirects_to_admin_login(client):
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("admin:login"))
    assert response.status_code == 200


def test_login_page_is_grappelli_styled(client, db):
    response = client.get(reverse("admin:login"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "grappelli" in html  # grappelli's stylesheets
    assert "Flowr" in html


@pytest.mark.parametrize("url", ["/admin/", "/admin/flowr/machine/", "/admin/flowr/instance/",
                                 "/admin/flowr/rulesetrecord/", "/admin/auth/user/"])
def test_admin_urls_send_anonymous_and_non_staff_to_login(client, django_user_model, url):
    response = client.get(url)
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]
    user = django_user_model.objects.create_user("plain", password="pw")
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_admin_index_for_staff(staff_client):
    response = staff_client.get("/admin/")
    assert response.status_code == 200
    assert "Machines" in response.content.decode()


def test_healthz_healthy(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "state_store": "ok", "status": "ok",
                               "timers": {"waiting": 0, "oldest_wait_s": 0.0, "late": False,
                                          "late_after_s": 300.0}}


def test_healthz_reports_a_store_that_is_down(client, db, settings):
    settings.FLOWS_STATE_STORE = "flowr.statestore.redis_store"
    settings.FLOWS_REDIS_STATE_STORE_HOST = "127.0.0.1"
    settings.FLOWS_REDIS_STATE_STORE_PORT = 1  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["state_store"].startswith("error")
    assert response.json()["database"] == "ok"


def _manage(*args, env=None):
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY"}}
    base.update(env or {})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=base,
                          capture_output=True, text=True, timeout=120)


def test_production_refuses_to_start_without_secret_key():
    result = _manage("check", env={"DEBUG": "0", "ALLOWED_HOSTS": "flowr.example.com"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_check_deploy_is_clean_with_production_variables():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env={
        "DEBUG": "0", "SECRET_KEY": "x" * 20 + "production-secret-key-with-enough-entropy-1234567890",
        "ALLOWED_HOSTS": "flowr.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://flowr.example.com",
    })
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_setupdemo_refuses_without_demo_mode():
    result = _manage("setupdemo", env={"DEBUG": "0", "SECRET_KEY": "s" * 60,
                                       "ALLOWED_HOSTS": "x.example.com"})
    assert result.returncode != 0
    assert "only runs in demo mode" in result.stderr


PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "p" * 60, "ALLOWED_HOSTS": "testserver",
              "SECURE_SSL_REDIRECT": "0"}


def test_static_files_are_collected_hashed_compressed_and_served_by_whitenoise(tmp_path):
    env = dict(PRODUCTION, STATIC_ROOT=str(tmp_path))
    result = _manage("collectstatic", "--noinput", env=env)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    hashed = manifest["grappelli/stylesheets/screen.css"]
    assert hashed != "grappelli/stylesheets/screen.css"  # content hash in the name
    assert (tmp_path / (hashed + ".gz")).exists()
    script = ("import django; django.setup(); from django.test import Client; "
              f"r = Client().get('/static/{hashed}'); print(r.status_code, r['Cache-Control'])")
    served = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120,
                            env={**os.environ, **env, "DJANGO_SETTINGS_MODULE":
                                 "flowr_site.settings"})
    assert served.stdout.split()[0] == "200", served.stderr
    assert "immutable" in served.stdout


def test_flows_settings_come_from_the_environment_with_config_defaults():
    code = ("from flowr import config; print(config.get('FLOWS_STATE_STORE'), "
            "config.task_idle_timeout(), config.get('FLOWS_REDIS_STATE_STORE_PORT'))")
    result = _manage("shell", "-v0", "-c", code, env={"FLOWS_TASK_IDLE_TIMEOUT": "30"})
    assert result.stdout.split() == ["flowr.statestore.django_store", "30", "6379"]
    result = _manage("check", env={"FLOWS_REDIS_STATE_STORE_PORT": "six"})
    assert result.returncode != 0
    assert "FLOWS_REDIS_STATE_STORE_PORT='six' is not a valid int" in result.stderr


def test_grappelli_switch_user_and_lookups_are_not_routed(staff_client, admin_user,
                                                          django_user_model):
    other = django_user_model.objects.create_superuser("other", "o@example.com", "pw")
    url = f"/grappelli/switch/user/{other.pk}/?redirect=/admin/"
    assert staff_client.get(url).status_code == 404
    assert staff_client.get("/admin/").context["user"] == admin_user  # not switched
    lookup = "?object_id=1&app_label=auth&model_name=user&query_string=password__gt=a"
    for kind in ("related", "m2m", "autocomplete"):
        assert staff_client.get(f"/grappelli/lookup/{kind}/{lookup}&term=a").status_code == 404


@pytest.mark.parametrize("url", ["/admin/", "/admin/flowr/machine/", "/admin/flowr/machine/add/",
                                 "/admin/flowr/instance/", "/admin/auth/user/",
                                 "/admin/auth/user/add/"])
def test_admin_pages_render_without_grappelli_urls(staff_client, url):
    response = staff_client.get(url)
    assert response.status_code == 200
    assert "grp-" in response.content.decode()
