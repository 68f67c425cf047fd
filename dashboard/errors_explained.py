"""Readable explanations of the error codes a rollout row can carry, in the reader's language.

The codes themselves (the cloud's and our own) are shown as they are, beside these."""

from django.utils.translation import gettext_lazy

from dashboard import compat

_CLOUD = {
    "WKS.00211102": gettext_lazy("The cloud found a parameter invalid."),
    "WKS.00211302": gettext_lazy("The cloud did not accept our credentials."),
    "WKS.00081102": gettext_lazy("Our credentials lack the permission for this action."),
    "WKS.00211902": gettext_lazy("The cloud does not know this server (any more)."),
    "WKS.00211103": gettext_lazy("The server is busy with a conflicting operation."),
    "WKS.00211401": gettext_lazy("The cloud failed to run the operation; try again later."),
    "WKS.00050902": gettext_lazy("The service was unavailable; try again later."),
    "WKS.00129901": gettext_lazy("The service could not process this server just then; retry it."),
    "APIGW.0301": gettext_lazy("The API gateway refused our authentication."),
    "APIGW.0303": gettext_lazy("The request signature expired (clock skew)."),
    "NOT_ACCEPTED": gettext_lazy(
        "After an ambiguous answer the cloud shows no job: not changed, safe to retry."
    ),
    "JOB_VANISHED": gettext_lazy("The job disappeared upstream."),
    "JOB_FAILED": gettext_lazy("The image change job failed."),
}


def explain(code: str) -> str:
    if not code:
        return ""
    if code in compat.MESSAGES:
        return str(compat.MESSAGES[code])
    return str(_CLOUD.get(code, ""))
