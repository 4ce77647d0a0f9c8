import time


def wait(ctx, data):
    seconds = float(data["task"].get("args", {}).get("seconds", 0.2))
    time.sleep(seconds)
    return {"slept": seconds}
