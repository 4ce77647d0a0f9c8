"""Test plugin: sleeps, and reports its wall-clock start and end and its worker's pid."""
import os
import time


def nap(ctx, data):
    started = time.time()
    seconds = float(data.get("seconds", 1))
    time.sleep(seconds)
    return {"slept": seconds, "label": data.get("label"), "started": started, "ended": time.time(),
            "pid": os.getpid()}
