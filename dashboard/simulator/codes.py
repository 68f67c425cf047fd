"""Every error code the simulator answers with, and the bodies that carry them.

Codes published by the cloud are used as published (generic WKS codes per HTTP status, the
gateway's APIGW codes, Keystone's error shape). The cloud does not publish codes for refused
image changes, so the per-reason codes in `REFUSAL_CODES` are the simulator's own, chosen in
the WKS style; docs/simulator.md lists them.
"""

from dashboard.simulator import rules

# Generic WorkspaceApp codes, one per HTTP status (as in the published specs).
BAD_REQUEST = "WKS.00211102"
UNAUTHORIZED = "WKS.00211302"
FORBIDDEN = "WKS.00081102"
NOT_FOUND = "WKS.00211902"
METHOD_NOT_ALLOWED = "WKS.00000405"
CONFLICT = "WKS.00211103"
UNSUPPORTED_MEDIA = "WKS.00000415"
INTERNAL = "WKS.00211401"
UNAVAILABLE = "WKS.00050902"
ITEM_UNAVAILABLE = "WKS.00129901"  # the published per-item / sub-job failure example
JOB_INVALID = "WKS.00149901"  # ShowJobDetail's published 400 example ("request is invalid")

MESSAGES = {
    BAD_REQUEST: "The parameter is invalid.",
    UNAUTHORIZED: "User authorization error.",
    FORBIDDEN: "User does not have permission to access this resource.",
    NOT_FOUND: "The resource does not exist.",
    METHOD_NOT_ALLOWED: "The method specified in the request is not allowed for this resource.",
    CONFLICT: "The request could not be completed due to a conflict of the resource.",
    UNSUPPORTED_MEDIA: "The server does not support the media type of the request payload.",
    INTERNAL: "The requested operation failed. Please try again later.",
    UNAVAILABLE: "The service is now unavailable to process the request.",
    ITEM_UNAVAILABLE: "The service is now unavailable to process the request.",
}

# API gateway codes (checked before the service sees the request).
GW_AUTH = "APIGW.0301"
GW_SIGNATURE_EXPIRED = "APIGW.0303"
GW_NOT_FOUND = "APIGW.0101"
GW_THROTTLED = "APIGW.0308"

# IMS codes for its {"error": {"code", "message"}} shape.
IMS_BAD_REQUEST = "IMG.0001"
IMS_NOT_FOUND = "IMG.0027"

# Per-server refusal codes for batch-change-image, one per simulator rule (simulator-chosen).
REFUSAL_CODES = {
    rules.SAME_IMAGE: "WKS.00211120",
    rules.SERVER_GONE: NOT_FOUND,
    rules.FROZEN: "WKS.00211121",
    rules.BUSY: CONFLICT,
    rules.UNKNOWN_IMAGE: "WKS.00211122",
    rules.NOT_READY: "WKS.00211123",
    rules.OTHER_OS: "WKS.00211124",
    rules.UNSUPPORTED_OS: "WKS.00211125",
    rules.OTHER_ARCHITECTURE: "WKS.00211126",
    rules.CURRENT_UNKNOWN: "WKS.00211127",
    rules.FREE_FOR_PAID: "WKS.00211128",
    rules.OTHER_PRODUCT: "WKS.00211129",
    rules.NO_PRODUCT: "WKS.00211130",
    rules.DISK_TOO_SMALL: "WKS.00211131",
}

# What a job that fails reports on its sub-job.
JOB_FAILED = ITEM_UNAVAILABLE
JOB_FAILED_MESSAGE = "Rebuilding the server with the new image failed."


def wks(code: str, message: str = "") -> dict[str, str]:
    """A WorkspaceApp error body."""
    return {"error_code": code, "error_msg": message or MESSAGES.get(code, "Request failed.")}


def gateway(code: str, message: str, request_id: str) -> dict[str, str]:
    """An API gateway error body (it carries the request id in the body too)."""
    return {"error_code": code, "error_msg": message, "request_id": request_id}


def ims(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def keystone(status: int, message: str, title: str) -> dict[str, dict[str, object]]:
    return {"error": {"code": status, "message": message, "title": title}}


def item_message(code: str) -> str:
    """The per-item error_message for a code (refusal codes get their rule's text)."""
    for name, mapped in REFUSAL_CODES.items():
        if mapped == code:
            return rules.MESSAGES[name]
    return MESSAGES.get(code, "The server cannot change its image now.")
