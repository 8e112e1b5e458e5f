"""The Celery app the integration tests run workers of and send tasks to.

The broker comes from CELERY_BROKER_URL so each test can point it at its own
vhost. No result backend: celeriac sees results through events only.
"""

import os
import time

from celery import Celery

app = Celery("tasks", broker=os.environ["CELERY_BROKER_URL"])
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
