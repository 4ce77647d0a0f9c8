def meddle(ctx, data):
    return {"failures": "none at all"}
