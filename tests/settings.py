"""Test settings: production-shaped (DEBUG off) with the secrets a test run needs."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("HUAWEICLOUD_SDK_PROJECT_ID", "0123456789abcdef0123456789abcdef")
os.environ.setdefault("HUAWEICLOUD_WORKSPACEAPP_ENDPOINT", "http://127.0.0.1:9")
os.environ.setdefault("HUAWEICLOUD_WORKSPACE_ENDPOINT", "http://127.0.0.1:9")
os.environ.setdefault("HUAWEICLOUD_IMS_ENDPOINT", "http://127.0.0.1:9")
os.environ.setdefault("HUAWEICLOUD_IAM_ENDPOINT", "http://127.0.0.1:9")
# The process-wide cloud guard outlives a test: unpaced, and a breaker that does not open, unless
# a test builds its own (tests/test_upstream_limits.py). Child processes inherit these.
os.environ.setdefault("CLOUD_RATE_LIMITS", "read=0,operate=0,job=0,ims=0,iam=0")
os.environ.setdefault("CLOUD_BREAKER_FAILURES", "1000000")

from dashboard.settings import *  # noqa: F403

# Manifest storage needs collectstatic; tests render templates without it.
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WHITENOISE_AUTOREFRESH = True  # no collectstatic in tests; serve from the finders
WHITENOISE_USE_FINDERS = True

# Each test run gets its own SQLite file, so parallel runs on one machine cannot collide.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": VAR_DIR / f"test-{os.getpid()}.sqlite3"}  # noqa: F405

# Calls in flight use threads, and threads cannot see a test's uncommitted transaction:
# tests send one call at a time unless they use transactional databases (see
# test_rollout_concurrency.py, which runs several in flight).
ROLLOUT_CALLS_IN_FLIGHT = 1
