"""A Python Celery worker's webui.tasks.compute_projection that only records what it was
given: `/usr/bin/python3 -m celery -A pyworker_projection worker -Q <queue> ...` with
PW_RECORD_FILE naming the file that receives one JSON line per task run."""
import json
import os

from celery import Celery

app = Celery("webui", broker=os.environ["CELERY_BROKER_URL"], backend="rpc://")
app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")


@app.task(bind=True, name="webui.tasks.compute_projection")
def compute_projection(self, projection_id):
    with open(os.environ["PW_RECORD_FILE"], "a") as fh:
        fh.write(json.dumps({"projection_id": projection_id, "task_id": self.request.id,
                             "retries": self.request.retries}) + "\n")
    return {"projection_id": projection_id, "status": "recorded"}
