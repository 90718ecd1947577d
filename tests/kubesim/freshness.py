"""A resourceVersion newer than the server's, answered as the watch cache does.

A list or watch asking for "at least resourceVersion N" where N is beyond
the server's current version (a client that talked to a newer server, an API
server restarted from an older snapshot) makes the real watch cache wait up
to 3 seconds for N, then give up with 504 Timeout:

  Too large resource version: N, current: M

with a ResourceVersionTooLarge cause and retryAfterSeconds 1. A list gets it
as its HTTP response; a watch as an ERROR event on a 200 stream. client-go
then lists again without a resourceVersion. The wait is --fresh-wait (3 s by
default, the real server's).
"""

import time

from util import ApiError


def too_large(store, rv, wait):
    """None when rv (a string or None) is not newer than the store, waiting up
    to wait seconds for it; otherwise the ApiError to answer with."""
    try:
        want = int(rv)
    except (TypeError, ValueError):
        return None
    deadline = time.monotonic() + wait
    with store.cond:
        while store.rv < want:
            left = deadline - time.monotonic()
            if left <= 0:
                return ApiError(504, "Timeout", "Too large resource version: %d, current: %d"
                                % (want, store.rv),
                                {"causes": [{"reason": "ResourceVersionTooLarge",
                                             "message": "Too large resource version"}],
                                 "retryAfterSeconds": 1})
            store.cond.wait(left)
    return None
