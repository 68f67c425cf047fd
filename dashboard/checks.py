"""Deploy checks (`manage.py check --deploy`) for settings Django cannot judge itself."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def trusted_proxies_configured(app_configs, **kwargs) -> list[Error]:
    # An empty list must never mean "trust everyone": without it nobody can log in.
    if settings.TRUSTED_PROXY_CIDRS or settings.SSO_JWT_HEADER:
        return []
    return [
        Error(
            "TRUSTED_PROXY_CIDRS is empty and SSO_JWT_HEADER is unset: no SSO identity can be "
            "trusted.",
            hint="Set TRUSTED_PROXY_CIDRS to the address range of the authenticating proxy.",
            id="dashboard.E001",
        )
    ]


@register(Tags.security, deploy=True)
def dev_identity_off(app_configs, **kwargs) -> list[Error]:
    if settings.DASHBOARD_DEV_USER and not settings.DEBUG:
        return [
            Error(
                "DASHBOARD_DEV_USER is set in production; it is ignored there, remove it.",
                id="dashboard.E002",
            )
        ]
    return []
