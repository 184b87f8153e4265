"""Celery application. Without REDIS_URL tasks run in-process (eager); with it, on separate workers."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfr.settings")

app = Celery("rfr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
