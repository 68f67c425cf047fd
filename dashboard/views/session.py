"""POST /sign-out/: end the dashboard's session and hand the browser to the proxy's sign-out.

The dashboard's own session alone is not enough: the authenticating proxy would sign the person
straight back in on the next request. So the browser is sent on to SSO_SIGN_OUT_URL (for
oauth2-proxy, /oauth2/sign_out), which ends the proxy's session too.
"""

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_POST

from dashboard import audit
from dashboard.roles import VIEWER, require_role


@require_POST
@require_role(VIEWER)
def sign_out(request: HttpRequest) -> HttpResponse:
    audit.record(request, "session.sign_out", target=settings.SSO_SIGN_OUT_URL)
    logout(request)  # flushes the session: its id and data are gone from the database
    return HttpResponseRedirect(settings.SSO_SIGN_OUT_URL)
