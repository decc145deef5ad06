"""Bench support: configure Django on a throw-away database, then migrate quietly.

Call `setup()` before importing models. With `database_url` (PostgreSQL) the named
database is dropped and re-created; without it a temporary SQLite *file* is used
with the project's SQLite settings (WAL, synchronous=NORMAL).
"""
import atexit
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _recreate_postgres(url):
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup(database_url=None):
    """Point the project settings at a fresh database and migrate it."""
    sys.path.insert(0, ROOT)
    os.chdir(ROOT)
    os.environ["DJANGO_SETTINGS_MODULE"] = "flowr_site.settings"
    # Production-like: DEBUG off (no query logging); HTTPS redirect off for the test client.
    os.environ.update(DEBUG="0", SECRET_KEY="bench-" + "x" * 50, SECURE_SSL_REDIRECT="0")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
    if database_url:
        _recreate_postgres(database_url)
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
        folder = tempfile.mkdtemp(prefix="flowr-bench-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ["FLOWR_SQLITE_PATH"] = os.path.join(folder, "bench.sqlite3")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def postgres_available(host="127.0.0.1", port=5432):
    import socket

    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False
