"""A minimal Celery 5 app for running a *Python* worker beside ours in the tests:
`/usr/bin/python3 -m celery -A pyworker_app worker -Q <queue> ...`."""
import os

from celery import Celery

app = Celery("webui", broker=os.environ["CELERY_BROKER_URL"], backend="rpc://")
app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")


@app.task(name="celery.ping")
def ping():
    """Celery 5.2 workers do not register celery.ping by themselves; same answer as ours."""
    return "pong"
