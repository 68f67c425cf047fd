"""System checks for the SSO settings Django cannot judge itself.

Deploy checks run with `manage.py check --deploy`; the others run at every start-up, because a
malformed proxy range or JWT setting is a broken configuration in any environment.
"""

import ipaddress

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


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


# No authenticating proxy needs more addresses than the largest private network (10/8): a wider
# trust is a typo or a shortcut that lets strangers send identity headers.
MAX_TRUSTED_V4 = ipaddress.ip_network("10.0.0.0/8").num_addresses
MAX_TRUSTED_V6 = ipaddress.ip_network("fc00::/8").num_addresses


def _trusted_address_counts(
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> dict[int, int]:
    """Addresses trusted per IP version, overlapping ranges counted once."""
    counts = {}
    for version in (4, 6):
        collapsed = ipaddress.collapse_addresses(n for n in networks if n.version == version)
        counts[version] = sum(network.num_addresses for network in collapsed)
    return counts


@register(Tags.security)
def trusted_proxies_valid(app_configs, **kwargs) -> list[Error]:
    errors = []
    networks = []
    for cidr in settings.TRUSTED_PROXY_CIDRS:
        try:
            network = ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            errors.append(
                Error(
                    f"TRUSTED_PROXY_CIDRS entry {cidr!r} is not an address or CIDR range.",
                    id="dashboard.E003",
                )
            )
            continue
        networks.append(network)
    counts = _trusted_address_counts(networks)
    for version, limit in ((4, MAX_TRUSTED_V4), (6, MAX_TRUSTED_V6)):
        if counts[version] > limit:
            errors.append(
                Error(
                    f"TRUSTED_PROXY_CIDRS trusts {counts[version]:,} IPv{version} addresses, more "
                    "than a /8: far more than an authenticating proxy needs, and possibly every "
                    "address on the Internet.",
                    hint="List only the authenticating proxy's addresses.",
                    id="dashboard.E004",
                )
            )
    return errors


@register(Tags.security)
def jwt_mode_complete(app_configs, **kwargs) -> list[Error]:
    if not settings.SSO_JWT_HEADER:
        return []
    missing = [
        name for name in ("SSO_JWT_ISSUER", "SSO_JWT_AUDIENCE") if not getattr(settings, name, "")
    ]
    if not (settings.SSO_JWT_JWKS_FILE or settings.SSO_JWT_JWKS_URL):
        missing.append("SSO_JWT_JWKS_FILE or SSO_JWT_JWKS_URL")
    if not missing:
        return []
    return [
        Error(
            f"SSO_JWT_HEADER is set but {', '.join(missing)} is not: no assertion can verify.",
            id="dashboard.E005",
        )
    ]


@register(Tags.security)
def header_names_reach_django(app_configs, **kwargs) -> list[Warning]:
    # gunicorn (and nginx by default) silently drop header names containing "_", because
    # X-Forwarded_User and X-Forwarded-User would otherwise both become HTTP_X_FORWARDED_USER.
    names = {
        "SSO_USER_HEADER": settings.SSO_USER_HEADER,
        "SSO_EMAIL_HEADER": settings.SSO_EMAIL_HEADER,
        "SSO_GROUPS_HEADER": settings.SSO_GROUPS_HEADER,
        "SSO_JWT_HEADER": settings.SSO_JWT_HEADER,
    }
    return [
        Warning(
            f"{setting}={value!r} contains an underscore; gunicorn and nginx drop such headers.",
            hint="Use dashes, as the proxy sends them (X-Forwarded-User).",
            id="dashboard.W001",
        )
        for setting, value in names.items()
        if value and "_" in value
    ]
