import time

from engine.sdk import PluginError


def scribble(ctx, data):
    args = data["task"].get("args", {})
    files = args.get("files", {})
    changes = [{"path": p, "action": "modify" if (ctx.workdir / p).exists() else "create"} for p in sorted(files)]
    plan = {"summary": f"would write {len(files)} file(s)", "changes": changes, "commands": []}
    if ctx.whatif:
        return {"plan": plan}
    for path, content in files.items():
        target = ctx.workdir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(content) if isinstance(content, list) else content)  # a list: its parts joined
    (ctx.workdir / ".scribbler-started").write_text(ctx.task_id)  # a marker a WhatIf run must never leave
    once = ctx.workspace / ".scribbler-hung" if ctx.workspace else None
    if args.get("hang") and once is not None and not once.exists():  # hang once per workspace
        once.write_text(ctx.task_id)
        time.sleep(float(args["hang"]))
    if args.get("fail"):
        raise PluginError("scribbler exited with code 1 after writing", retryable=False)
    return {"plan": plan, "applied": {"changes": changes + [{"path": ".scribbler-started", "action": "create"}]}}
