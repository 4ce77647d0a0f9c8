"""Test plugin: every way a plugin can misbehave, one operation each."""
import ctypes
import os
import sys
import time

from engine.sdk import PluginError


def ok(ctx, data):
    ctx.log.info("ok_called", n=1)
    return {"pid": os.getpid(), "cwd": os.getcwd(), "env": sorted(os.environ)}


def hang(ctx, data):
    print("about to hang", file=sys.stderr, flush=True)
    time.sleep(3600)


def exit(ctx, data):  # noqa: A001
    print("exiting now", file=sys.stderr, flush=True)
    os._exit(1)


def sysexit(ctx, data):
    raise SystemExit(3)


def kbint(ctx, data):
    raise KeyboardInterrupt


def segv(ctx, data):
    ctypes.string_at(0)


def closefds(ctx, data):
    os.closerange(0, 4096)
    return {}


def junk(ctx, data):
    print("\x00\x00\x00\x10 not a frame {]", flush=True)
    sys.stdout.write("more junk\n" * 10000)
    sys.stdout.flush()
    return {"fine": True}


def badoutput(ctx, data):
    return {"n": "not a number"}


def business(ctx, data):
    raise PluginError("the branch moved", code="MERGE_CONFLICT")


def undeclared(ctx, data):
    raise PluginError("whatever", code="NOT_DECLARED")


def garbage(ctx, data):
    # The worker's answer pipe is the fourth word of its command line: write a frame that is not JSON.
    os.write(int(sys.argv[3]), b"\x00\x00\x00\x07garbage")
    return {}
