"""Sends and revokes tasks for the Rust integration tests.

    client.py send <task> <args-json> [--kwargs JSON] [--countdown N] [--expires N] [--queue Q] [--priority N] [--count N]
    client.py revoke <id> [--terminate] [--signal SIGTERM]
    client.py workflow [chord|chain]

`workflow chord` (the default) starts chain(add(1, 1), chord([add(0, 0),
add(1, 1), add(2, 2)], tsum), fail) (a chord needs CELERY_RESULT_BACKEND);
`workflow chain` starts chain(add(1, 1), add(2, 2), fail('chain-boom')),
which needs no result backend. Both print `{"root": <first task>, "last":
<the failing task>}`.

`send` prints a JSON array of the new task ids on stdout; `revoke` prints
`{"revoked": "<id>"}`. The broker comes from CELERY_BROKER_URL.
"""

import argparse
import json
import sys

from tasks import app


def send(opts):
    task = app.tasks["tasks." + opts.task]
    args = json.loads(opts.args)
    if not isinstance(args, list):
        sys.exit("args must be a JSON array, got %r" % opts.args)
    # A tuple, as `task.delay(2, 3)` passes them, so args reprs read "(2, 3)".
    args = tuple(args)
    options = {}
    if opts.countdown is not None:
        options["countdown"] = opts.countdown
    if opts.expires is not None:
        options["expires"] = opts.expires
    if opts.queue is not None:
        options["queue"] = opts.queue
    if opts.priority is not None:
        options["priority"] = opts.priority
    kwargs = json.loads(opts.kwargs)
    ids = [task.apply_async(args, kwargs, **options).id for _ in range(opts.count)]
    # Closing the pools ends the AMQP connections cleanly, so the task-sent
    # events are flushed before the process exits.
    app.close()
    print(json.dumps(ids), flush=True)


def revoke(opts):
    app.control.revoke(opts.id, terminate=opts.terminate, signal=opts.signal)
    print(json.dumps({"revoked": opts.id}), flush=True)


def workflow(opts):
    from celery import chain, chord

    add, fail, tsum = (app.tasks["tasks." + n] for n in ("add", "fail", "tsum"))
    if opts.kind == "chain":
        flow = chain(add.si(1, 1), add.si(2, 2), fail.si("chain-boom"))
    else:
        header = [add.si(i, i) for i in range(3)]
        flow = chain(add.si(1, 1), chord(header, tsum.s()), fail.s())
    last = flow.apply_async()
    root = last.parent
    while root.parent is not None:
        root = root.parent
    app.close()
    print(json.dumps({"root": root.id, "last": last.id}), flush=True)


def main():
    parser = argparse.ArgumentParser(prog="client.py")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("send")
    p.add_argument("task")
    p.add_argument("args", nargs="?", default="[]")
    p.add_argument("--kwargs", default="{}")
    p.add_argument("--countdown", type=float)
    p.add_argument("--expires", type=float)
    p.add_argument("--queue")
    p.add_argument("--priority", type=int)
    p.add_argument("--count", type=int, default=1)
    p.set_defaults(func=send)

    p = sub.add_parser("revoke")
    p.add_argument("id")
    p.add_argument("--terminate", action="store_true")
    p.add_argument("--signal", default="SIGTERM")
    p.set_defaults(func=revoke)

    p = sub.add_parser("workflow")
    p.add_argument("kind", nargs="?", default="chord", choices=["chord", "chain"])
    p.set_defaults(func=workflow)

    opts = parser.parse_args()
    opts.func(opts)


if __name__ == "__main__":
    main()
