"""pingapp.py - the smallest Celery app the ping benchmark needs (client and Python worker).

Broker from CELERY_BROKER_URL, rpc:// results, JSON only: the same settings the web UI
uses (see /work/shared/celery-wire/README.md).

`celery.ping` is NOT registered by default in Celery 5.2.6 (an app's builtins are
accumulate/chain/chord/group/map/...); it is a shared_task in
celery.contrib.testing.tasks (returns 'pong'), so it is imported here.  Without this
import the Python worker rejects every ping as an unregistered task."""
import os

from celery import Celery

import celery.contrib.testing.tasks  # noqa: F401  (registers the shared task celery.ping)

app = Celery("pingapp", broker=os.environ["CELERY_BROKER_URL"], backend="rpc://")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)
