"""Test plugin: returns the time, seed and ids its call context carries, and a draw from a seeded RNG."""

import random

from engine.sdk import Context


def stamp(ctx: Context, data):
    rng = random.Random(ctx.seed)
    return {"stamp": {"now": ctx.now.isoformat(), "seed": ctx.seed, "task_id": ctx.task_id,
                      "draw": rng.randint(0, 10**9)}}
