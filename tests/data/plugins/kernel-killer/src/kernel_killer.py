import os


def kill(ctx, data):
    os._exit(1)  # no exception, no cleanup, no release of the claim: the process is simply gone
