"""The cloud client. (The full client lands with the cloud-client issue.)"""

import socket
from urllib.parse import urlsplit

from dashboard.cloud.config import from_settings


def reachable(timeout: float = 1.0) -> bool:
    """True if the WorkspaceApp endpoint accepts a TCP connection (no credentials spent)."""
    parts = urlsplit(from_settings().workspaceapp_endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
