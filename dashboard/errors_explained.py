"""Readable explanations of the error codes a rollout row can carry."""

from dashboard import compat

_CLOUD = {
    "WKS.00211102": "The cloud found a parameter invalid.",
    "WKS.00211302": "The cloud did not accept our credentials.",
    "WKS.00081102": "Our credentials lack the permission for this action.",
    "WKS.00211902": "The cloud does not know this server (any more).",
    "WKS.00211103": "The server is busy with a conflicting operation.",
    "WKS.00211401": "The cloud failed to run the operation; try again later.",
    "WKS.00050902": "The service was unavailable; try again later.",
    "WKS.00129901": "The service could not process this server just then; retry it.",
    "APIGW.0301": "The API gateway refused our authentication.",
    "APIGW.0303": "The request signature expired (clock skew).",
    "NOT_ACCEPTED": "After an ambiguous answer the cloud shows no job: not changed, safe to retry.",
    "JOB_VANISHED": "The job disappeared upstream.",
    "JOB_FAILED": "The image change job failed.",
}


def explain(code: str) -> str:
    if not code:
        return ""
    if code in compat.MESSAGES:
        return compat.MESSAGES[code]
    return _CLOUD.get(code, "")
