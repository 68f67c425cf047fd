"""The session's own controls: sign out, the demo identities, the language.

POST /sign-out/: end the dashboard's session and hand the browser to the proxy's sign-out.

The dashboard's own session alone is not enough: the authenticating proxy would sign the person
straight back in on the next request. So the browser is sent on to SSO_SIGN_OUT_URL (for
oauth2-proxy, /oauth2/sign_out), which ends the proxy's session too.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import i18n
from django.views.decorators.http import require_POST

from dashboard import audit, sso
from dashboard.roles import VIEWER, require_role


@require_POST
@require_role(VIEWER)
def sign_out(request: HttpRequest) -> HttpResponse:
    demo = request.sso_identity is not None and request.sso_identity.source == "dev"
    target = "/" if demo else settings.SSO_SIGN_OUT_URL
    # Behind SSO the next request is signed in again: sign-outs in a loop count against the
    # source's ration of audit rows rather than growing the trail without end.
    if audit.within_ration(request, "session.sign_out", target=target):
        audit.record(request, "session.sign_out", target=target)
    logout(request)  # flushes the session: its id and data are gone from the database
    if not demo:
        return HttpResponseRedirect(target)
    # The local demo has no proxy to sign out of: it starts again as the first demo person.
    messages.info(request, _("Signed out. The local demo signs you in again as its first person."))
    response = HttpResponseRedirect(target)
    response.delete_cookie(sso.DEMO_COOKIE)
    return response


@require_POST
@require_role(VIEWER)
def demo_identity(request: HttpRequest) -> HttpResponse:
    """Local demo only (DEBUG, loopback, a second demo identity configured): switch between
    the two demo identities, e.g. to approve a rollout as a second person."""
    if not (settings.DEBUG and settings.DASHBOARD_DEV_SECOND_USER):
        raise Http404(_("No demo identities here."))
    if request.sso_identity is None or request.sso_identity.source != "dev":
        raise Http404(_("No demo identities here."))
    second = request.POST.get("who") == "second"
    audit.record(request, "session.demo_identity", target="second" if second else "first")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = "/"
    response = redirect(back)
    if second:
        response.set_cookie(sso.DEMO_COOKIE, "second", httponly=True, samesite="Lax")
    else:
        response.delete_cookie(sso.DEMO_COOKIE)
    return response


@require_POST
@require_role(VIEWER)
def set_language(request: HttpRequest) -> HttpResponse:
    """POST /language/ (`language`, `next`): the navigation's language switcher.

    Django's own view does the work: it accepts only a code from LANGUAGES, remembers it in the
    language cookie (LocaleMiddleware prefers it to Accept-Language from then on) and sends the
    browser back to `next` when that is on this site. A display preference of one browser
    changes nothing anyone else sees, so it is not audited.
    """
    # Django's view would take any language it has a catalog for; only ours are offered.
    if request.POST.get("language") not in dict(settings.LANGUAGES):
        return HttpResponseBadRequest(_("Choose one of the languages offered."))
    return i18n.set_language(request)
