"""gunicorn settings for production: `gunicorn -c python:dashboard.gunicorn_conf dashboard.wsgi`.

gunicorn joins a header that arrives more than once into one comma-separated value, and for a
comma-separated header (the SSO groups) the joined value looks exactly like one list: a proxy
that appends instead of overwriting would let a client add `dashboard-admins` to its own
groups. `pre_request` sees the raw header list before the join and names every repeated
header in X-Dashboard-Repeated-Headers, which dashboard.sso refuses for identity headers.

A client can send that header itself, but only to have its own identity refused. This module
imports nothing from Django: gunicorn reads it before the application loads.
"""

from collections import Counter

REPEATED_HEADERS = "X-Dashboard-Repeated-Headers"


def pre_request(worker, req) -> None:
    """gunicorn's hook, called with the parsed request before the WSGI environ is built."""
    counts = Counter(name.upper() for name, _value in req.headers)
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        req.headers.append((REPEATED_HEADERS.upper(), ",".join(repeated)))
