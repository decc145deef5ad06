"""WSGI entry point for gunicorn (see Procfile)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowr_site.settings")
application = get_wsgi_application()
