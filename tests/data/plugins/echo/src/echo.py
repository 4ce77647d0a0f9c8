def echo(ctx, data):
    return {"echoed": {k: v for k, v in data.items() if k != "task"}}
