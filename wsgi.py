"""WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi ...``."""
from lms_bridge import create_app

app = create_app()
