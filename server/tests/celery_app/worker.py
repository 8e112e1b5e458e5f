"""Runs `celery worker` (same arguments as `python -m celery`) and takes the
whole process group down if the test process that started it dies, so a
crashed or killed test run leaves no workers behind.
"""

import os
import signal
import sys
import threading
import time


def _watch_parent(parent):
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os.killpg(0, signal.SIGKILL)


threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

from celery.__main__ import main  # noqa: E402  (after the watchdog is up)

sys.argv = ["celery"] + sys.argv[1:]
sys.exit(main())
