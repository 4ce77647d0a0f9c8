from engine.sdk import PluginError


def write(ctx, data):
    args = data["task"].get("args", {})
    written = []
    for i in range(int(args.get("files", 1))):
        path = ctx.workdir / f"written-{i}.txt"
        path.write_text("".join(f"line {n}\n" for n in range(int(args.get("lines", 1)))))
        written.append(path.name)
    if args.get("fail"):
        raise PluginError("writer failed after writing", retryable=False)
    return {"written": written}
