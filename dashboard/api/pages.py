"""The /tokens/ page, admins only: make a service token (its secret shown once), for every
project or for one, list the tokens with their role, scope, expiry and last use, revoke one,
or every one a person made (someone who has left). Each is audited. A token the dashboard
revoked itself, its creator no longer holding its role (dashboard/roles.py), says so.

The creation form carries a one-time nonce, kept on the token it made: the same form sent
again (the browser's Reload, its resubmission accepted) is told that it made this token
already and that its secret was shown that once, and makes nothing."""

import re
import secrets
from datetime import timedelta

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from dashboard import audit, projects
from dashboard.api import tokens
from dashboard.models import ServiceToken
from dashboard.roles import ADMIN, ROLE_LABELS, ROLES, require_role

EXPIRY_DAYS = [
    *(
        (days, ngettext_lazy("%(n)d day", "%(n)d days", "n") % {"n": days})
        for days in (7, 30, 90, 180)
    ),
    (365, _("1 year")),
]

# What the form's nonce looks like (secrets.token_urlsafe(24)); anything else is no nonce.
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
NAME = re.compile(r"[A-Za-z0-9_-]{1,50}")  # as forms.SlugField(max_length=50) takes it


class TokenForm(forms.Form):
    name = forms.SlugField(
        max_length=50,
        help_text=_(
            "Up to 50 letters, digits, dashes and underscores, e.g. deploy-bot; kept in "
            "lowercase and shown as token:<name>."
        ),
        error_messages={
            "invalid": _("Use only letters, digits, dashes and underscores, e.g. deploy-bot.")
        },
    )
    role = forms.ChoiceField(
        choices=[(role, ROLE_LABELS[role]) for role in ROLES], initial="operator"
    )
    expires_in = forms.TypedChoiceField(
        choices=EXPIRY_DAYS, coerce=int, initial=90, label=_("Expires after")
    )
    project = forms.ChoiceField(
        required=False,
        label=_("Projects"),
        help_text=_("A token for one project sees and acts on that project only."),
    )
    # One per form shown: kept on the token it makes, to know that form when it comes again.
    nonce = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["nonce"].initial = secrets.token_urlsafe(24)
        self.fields["project"].choices = [("", _("all projects"))] + [
            (config.name, config.title) for config in projects.configured()
        ]

    def clean_project(self):
        """The configured project chosen, or None for every project."""
        return projects.by_name(self.cleaned_data["project"])

    def clean_nonce(self) -> str:
        """The form's nonce, or "" for none (a tampered one is no nonce, not an error)."""
        nonce = self.cleaned_data["nonce"]
        return nonce if NONCE.fullmatch(nonce) else ""

    def made_by_this_form(self) -> ServiceToken | None:
        """The token this very form made when it was first sent, if this is it sent again (a
        reload): its nonce and the name it asks for are that token's. None otherwise."""
        nonce = str(self.data.get("nonce", ""))
        name = str(self.data.get("name", "")).strip()
        if not (NONCE.fullmatch(nonce) and NAME.fullmatch(name)):
            return None
        return ServiceToken.objects.filter(name=name.lower(), form_nonce=nonce).first()

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].lower()
        if ServiceToken.objects.filter(name=name).exists():
            raise forms.ValidationError(_("A token of that name exists; pick another name."))
        return name


def _page(
    request: HttpRequest, form: TokenForm, issued=None, already=None, status: int = 200
) -> HttpResponse:
    now = timezone.now()
    listed = list(ServiceToken.objects.select_related("project"))
    unrevoked = {token.created_by for token in listed if token.revoked_at is None}
    context = {
        "form": form,
        "tokens": listed,
        # Whose tokens "revoke all" offers: anyone with a token not yet revoked.
        "creators": sorted(unrevoked, key=str.casefold),
        "issued": issued,
        "already": already,  # the token this form made when first sent, now sent again
        "now": now,
        "lost_role": ServiceToken.CREATOR_LOST_ROLE,
    }
    return render(request, "tokens/list.html", context, status=status)


@require_http_methods(["GET", "POST"])
@require_role(ADMIN)
def token_list(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request, TokenForm())
    form = TokenForm(request.POST)
    already = form.made_by_this_form()
    if already is not None:
        # Sent again (a reload): say so, instead of refusing the name it took the first time.
        audit.record(
            request,
            "token.create",
            outcome="refused",
            target=already.actor,
            code="token.form_resent",
        )
        return _page(request, TokenForm(), already=already)
    if not form.is_valid():
        audit.record(request, "token.create", outcome="refused", errors=form.errors.get_json_data())
        return _page(request, form, status=400)
    issued = tokens.issue(
        name=form.cleaned_data["name"],
        role=form.cleaned_data["role"],
        expires_at=timezone.now() + timedelta(days=form.cleaned_data["expires_in"]),
        created_by=request.user.get_username(),
        project=form.cleaned_data["project"],
        form_nonce=form.cleaned_data["nonce"],
    )
    scope = form.cleaned_data["project"]
    audit.record(
        request,
        "token.create",
        target=issued.token.actor,
        role=issued.token.role,
        scope=scope.name if scope else "all projects",
        expires_at=issued.token.expires_at.isoformat(),
    )
    # Rendered, not redirected: the secret is in this one answer (no-store) and nowhere else.
    return _page(request, TokenForm(), issued=issued, status=201)


@require_POST
@require_role(ADMIN)
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ServiceToken, pk=token_id)
    if tokens.revoke(token, by=request.user.get_username()):
        audit.record(request, "token.revoke", target=token.actor)
        messages.success(
            request, gettext("%(name)s revoked; it stops working at once.") % {"name": token.actor}
        )
    else:
        messages.info(request, gettext("%(name)s was already revoked.") % {"name": token.actor})
    return redirect("tokens")


@require_POST
@require_role(ADMIN)
def token_revoke_all(request: HttpRequest) -> HttpResponse:
    """Revoke every token one person made, in one action: for someone who has left."""
    username = request.POST.get("created_by", "").strip()[:150]
    revoked = tokens.revoke_all_of(username, by=request.user.get_username()) if username else []
    for token in revoked:
        audit.record(request, "token.revoke", target=token.actor, all_made_by=username)
    if revoked:
        messages.success(
            request,
            ngettext(
                "%(count)d token made by %(who)s revoked; it stops working at once.",
                "%(count)d tokens made by %(who)s revoked; they stop working at once.",
                len(revoked),
            )
            % {"count": len(revoked), "who": username},
        )
    else:
        messages.info(request, gettext("%(who)s has no token to revoke.") % {"who": username})
    return redirect("tokens")
