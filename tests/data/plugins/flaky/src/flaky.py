from engine.sdk import PluginError


def call(ctx, data):
    args = data["task"].get("args", {})
    counter = ctx.workdir / ".git" / "flaky-calls"  # inside .git: not a change to the working tree
    calls = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    if calls <= int(args.get("fail_times", 0)):
        raise PluginError(f"flaky failure {calls}", retryable=bool(args.get("retryable", True)))
    return {"calls": calls}
