"""The Celery app the integration tests run workers of and send tasks to.

The broker comes from CELERY_BROKER_URL so each test can point it at its own
vhost. No result backend unless CELERY_RESULT_BACKEND names one (the tests
of Flower's task result API): celeriac sees results through events.
"""

import os
import time

from celery import Celery
from celery.contrib.abortable import AbortableTask

app = Celery(
    "tasks",
    broker=os.environ["CELERY_BROKER_URL"],
    backend=os.environ.get("CELERY_RESULT_BACKEND") or None,
)
app.conf.update(
    # Producers publish task-sent only when asked; celeriac takes the client
    # nodename and the queue from it.
    task_send_sent_event=True,
    broker_connection_retry_on_startup=True,
    # A test that kills a worker must not leave it holding prefetched tasks
    # that another test run would wait for.
    worker_prefetch_multiplier=1,
    # Revoked ids live in the worker's memory only; nothing is persisted.
    worker_state_db=None,
)
if os.environ.get("CELERY_QUEUE_TYPE") == "quorum":
    # Quorum queues, as on RabbitMQ 4: Celery then sends ETA and countdown
    # tasks through RabbitMQ's native delayed delivery (the
    # `celery_delayed_*` cascade), which needs a topic exchange.
    app.conf.update(
        task_default_queue_type="quorum",
        task_default_exchange_type="topic",
        broker_transport_options={"confirm_publish": True},
    )
# A producer without task-sent (tests of the events-off diagnosis), a
# worker-wide hard time limit (tests of stuck tasks) and a soft one (tests
# of the capacity advice).
if os.environ.get("CELERY_TASK_SEND_SENT_EVENT") == "0":
    app.conf.task_send_sent_event = False
if os.environ.get("CELERY_TASK_TIME_LIMIT"):
    app.conf.task_time_limit = float(os.environ["CELERY_TASK_TIME_LIMIT"])
if os.environ.get("CELERY_TASK_SOFT_TIME_LIMIT"):
    app.conf.task_soft_time_limit = float(os.environ["CELERY_TASK_SOFT_TIME_LIMIT"])
# Redis transport options kombu takes beside the URL (tests/redis_broker.rs):
# Sentinel's master name and its nodes' own password, and the global key
# prefix of every key and channel.
_redis_options = {
    key: os.environ[env]
    for key, env in (
        ("master_name", "CELERY_REDIS_MASTER_NAME"),
        ("global_keyprefix", "CELERY_REDIS_GLOBAL_KEYPREFIX"),
    )
    if os.environ.get(env)
}
if os.environ.get("CELERY_REDIS_SENTINEL_PASSWORD"):
    _redis_options["sentinel_kwargs"] = {
        "password": os.environ["CELERY_REDIS_SENTINEL_PASSWORD"]
    }
if _redis_options:
    app.conf.broker_transport_options = {
        **(app.conf.broker_transport_options or {}),
        **_redis_options,
    }
# `pool_restart` is refused unless enabled; it is also what makes a changed
# time limit apply to new tasks (tests/control.rs).
app.conf.worker_pool_restarts = True


@app.task
def add(x, y):
    return x + y


@app.task
def fail(msg):
    raise ValueError(msg)


@app.task(bind=True)
def flaky(self, n):
    # request.retries is carried in the re-published message, so no shared
    # state between pool processes is needed to fail exactly once.
    if self.request.retries < 1:
        raise self.retry(exc=RuntimeError("transient %s" % n), countdown=1)
    return "ok after %d retries" % self.request.retries


@app.task
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@app.task(bind=True)
def progress(self, steps=2, delay=1.5):
    # The pauses keep the task in PROGRESS long enough for a poller to see it.
    for i in range(steps):
        self.send_event("task-progress", current=i + 1, total=steps)
        time.sleep(delay)
    return steps


@app.task
def fail_until(flag, *args, **kwargs):
    # Fails until the flag file exists, so a test can fix the cause and then
    # re-run the task; the result shows the arguments it ran with.
    if not os.path.exists(flag):
        raise RuntimeError("flag %s is missing" % flag)
    return {"args": [flag, *args], "kwargs": kwargs}


@app.task(bind=True, base=AbortableTask)
def abortable(self, seconds=60):
    # Runs until aborted through the result backend, or `seconds` pass.
    deadline = time.time() + seconds
    while time.time() < deadline:
        if self.is_aborted():
            return "aborted"
        time.sleep(0.2)
    return "not aborted"


# Failure groups (tests/insight.rs): one bug reached from two call sites,
# and two bugs in one function.
def _parse_amount(value):
    return int(value)


def _line_total(value):
    return _parse_amount(value) * 2


@app.task
def bill(value, via="direct"):
    if via == "direct":
        return _parse_amount(value)
    return _line_total(value)


@app.task
def validate(value, which):
    if which == "empty":
        raise ValueError("empty value %r" % (value,))
    if which == "negative":
        raise ValueError("negative value %r" % (value,))
    return value


@app.task
def hold(seconds, **kwargs):
    # Stays active with its kwargs, for what inspect `active` shows.
    time.sleep(seconds)
    return sorted(kwargs)


@app.task
def tsum(values):
    """A chord body: the sum of its header's results."""
    return sum(values)
