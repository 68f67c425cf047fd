"""The automation API at /api/v1/: what the pages do, as JSON, under the same rules.

Every operation calls the same domain functions as the views (planning, control, lifecycle),
so a rule lives in one place. Pipelines sign in with service tokens (tokens.py, made on the
/tokens/ page); people with their SSO session (auth.py). Errors are RFC 9457 problem documents
with stable codes (problems.py); every POST takes an Idempotency-Key (idempotency.py).
"""
