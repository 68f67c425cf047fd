"""Which image a server may be switched to, and why not.

One pure function, `verdict()`, used by the form, the plan, the worker (re-check just before
sending) and the simulator (server-side check), so the four can never drift apart. Each
rule has a stable reason code (shown in the UI, stored on rollout rows, returned by the
simulator) and a human message.

The cloud's rule (BatchChangeServerImage): only equivalent images may be swapped: the same
OS; free for free; paid only for paid of the same source and price. We read "same source
and price" as "the same marketplace product" (product code): a product carries its price.
"""

from dataclasses import dataclass, field
from functools import cache

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

WINDOWS = "Windows"
ACTIVE_IMAGE = "active"
BUSY_JOB_STATES = frozenset({"WAITING", "RUNNING"})
MARKETPLACE = "marketplace"


@dataclass(frozen=True)
class ServerFacts:
    id: str
    image_id: str
    os_type: str
    architecture: str = ""
    system_disk_size: int | None = None  # GB; None when unknown (rule then passes)
    frozen: bool = False
    gone: bool = False
    job_status: str = ""
    session_count: int = 0
    maintain_status: bool = False


@dataclass(frozen=True)
class ImageFacts:
    id: str
    os_type: str
    architecture: str = ""
    image_type: str = "private"  # private / shared / public / marketplace
    status: str = ACTIVE_IMAGE
    min_disk: int = 0
    paid: bool = False
    product_code: str = ""


@dataclass(frozen=True)
class Reason:
    code: str
    message: str


@dataclass(frozen=True)
class Verdict:
    action: str  # "change", "skip" or "blocked"
    reasons: tuple[Reason, ...] = ()  # why it is blocked (or skipped)
    warnings: tuple[Reason, ...] = field(default_factory=tuple)  # do not block

    @property
    def ok(self) -> bool:
        return self.action == CHANGE

    @property
    def reason(self) -> Reason | None:
        return self.reasons[0] if self.reasons else None


CHANGE, SKIP, BLOCKED = "change", "skip", "blocked"

# Stable reason codes. Never rename one: they are stored and shown.
SAME_IMAGE = "same_image"
SERVER_GONE = "server_gone"
SERVER_FROZEN = "server_frozen"
SERVER_BUSY = "server_busy"
IN_OTHER_ROLLOUT = "in_other_rollout"
IMAGE_UNKNOWN = "image_unknown"
IMAGE_NOT_ACTIVE = "image_not_active"
OS_MISMATCH = "os_mismatch"
OS_UNSUPPORTED = "os_unsupported"
ARCH_MISMATCH = "arch_mismatch"
CURRENT_IMAGE_UNKNOWN = "current_image_unknown"
FREE_PAID_MISMATCH = "free_paid_mismatch"
PAID_PRODUCT_MISMATCH = "paid_product_mismatch"
MARKET_PRODUCT_MISSING = "market_product_missing"
DISK_TOO_SMALL = "disk_too_small"
ACTIVE_SESSIONS = "active_sessions"
NOT_IN_MAINTENANCE = "not_in_maintenance"

# Blocked whatever the target image, for now: such servers are not "incompatible" with it.
NOT_NOW = frozenset({SERVER_GONE, SERVER_FROZEN, SERVER_BUSY, IN_OTHER_ROLLOUT})

# Shown in the reader's language; the codes are what is stored and compared.
MESSAGES = {
    SAME_IMAGE: gettext_lazy("Already runs the target image."),
    SERVER_GONE: gettext_lazy("The server no longer exists."),
    SERVER_FROZEN: gettext_lazy("The server is frozen (arrears, police or verification hold)."),
    SERVER_BUSY: gettext_lazy("The server has a job waiting or running."),
    IN_OTHER_ROLLOUT: gettext_lazy("The server is in another active rollout."),
    IMAGE_UNKNOWN: gettext_lazy("The target image is not known."),
    IMAGE_NOT_ACTIVE: gettext_lazy("The target image is not active."),
    OS_MISMATCH: gettext_lazy("The target image has another operating system."),
    OS_UNSUPPORTED: gettext_lazy("Only Windows servers can change image today."),
    ARCH_MISMATCH: gettext_lazy("The target image is for another architecture."),
    CURRENT_IMAGE_UNKNOWN: gettext_lazy(
        "The server's current image is unknown, so equivalence cannot be checked."
    ),
    FREE_PAID_MISMATCH: gettext_lazy("Free and paid images cannot be swapped for each other."),
    PAID_PRODUCT_MISMATCH: gettext_lazy(
        "A paid image can only be swapped for one of the same marketplace product and price."
    ),
    MARKET_PRODUCT_MISSING: gettext_lazy("The marketplace image has no product id."),
    DISK_TOO_SMALL: gettext_lazy("The image needs a larger system disk than the server has."),
    ACTIVE_SESSIONS: gettext_lazy("Users are connected and will be disconnected."),
    NOT_IN_MAINTENANCE: gettext_lazy(
        "The server is not in maintenance mode and may take new sessions."
    ),
}


def localized(stored: str) -> str:
    """A stored reason text (messages joined by "; ", each perhaps with a detail, written in
    the language of whoever planned) in the reader's language: each message of MESSAGES is
    put in the reader's words, its detail kept; any other text is left as it was."""
    known = _messages_in_every_language()
    parts = []
    for part in stored.split("; ") if stored else ():
        found = next((text for text in known if part.startswith(text)), None)
        parts.append(f"{MESSAGES[known[found]]}{part[len(found) :]}" if found else part)
    return "; ".join(parts)


@cache
def _messages_in_every_language() -> dict[str, str]:
    """Each message of MESSAGES as every offered language words it → its code, longest first
    (so a message that begins another is not taken for it)."""
    worded = {}
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            worded.update({str(message): code for code, message in MESSAGES.items()})
    return dict(sorted(worded.items(), key=lambda item: -len(item[0])))


def reason(code: str, detail: str = "") -> Reason:
    message = str(MESSAGES[code])
    return Reason(code, f"{message} {detail}".strip())


def verdict(
    server: ServerFacts,
    target: ImageFacts | None,
    current: ImageFacts | None,
    *,
    in_other_rollout: bool = False,
) -> Verdict:
    """Decide whether `server` may move from `current` (its image) to `target`.

    Every blocking rule is evaluated, so the plan can show all the reasons at once; the
    first one is the headline. A server already on the target is a skip, not an error.
    """
    if target is None:
        return Verdict(BLOCKED, (reason(IMAGE_UNKNOWN),))
    if server.image_id == target.id:
        return Verdict(SKIP, (reason(SAME_IMAGE),))

    blocking = [*_server_rules(server, in_other_rollout), *_image_rules(server, target, current)]
    if blocking:
        return Verdict(BLOCKED, tuple(blocking), _warnings(server))
    return Verdict(CHANGE, (), _warnings(server))


def unavailable_now(server: ServerFacts, *, in_other_rollout: bool = False) -> bool:
    """Held back whatever the image: gone, frozen, a job running, or in another rollout."""
    return bool(_server_rules(server, in_other_rollout))


def _server_rules(server: ServerFacts, in_other_rollout: bool) -> list[Reason]:
    found = []
    if server.gone:
        found.append(reason(SERVER_GONE))
    if server.frozen:
        found.append(reason(SERVER_FROZEN))
    if server.job_status in BUSY_JOB_STATES:
        found.append(reason(SERVER_BUSY, f"({server.job_status.lower()})"))
    if in_other_rollout:
        found.append(reason(IN_OTHER_ROLLOUT))
    return found


def _image_rules(server: ServerFacts, target: ImageFacts, current: ImageFacts | None) -> list:
    found = []
    if target.status != ACTIVE_IMAGE:
        found.append(
            reason(
                IMAGE_NOT_ACTIVE,
                _("(status %(status)s)") % {"status": target.status or _("unknown")},
            )
        )
    if target.os_type != server.os_type:
        found.append(reason(OS_MISMATCH, f"({server.os_type or '?'} → {target.os_type or '?'})"))
    elif target.os_type != WINDOWS:
        found.append(reason(OS_UNSUPPORTED))
    if server.architecture and target.architecture and server.architecture != target.architecture:
        found.append(reason(ARCH_MISMATCH, f"({server.architecture} → {target.architecture})"))
    found.extend(_billing_rules(target, current))
    if server.system_disk_size is not None and target.min_disk > server.system_disk_size:
        found.append(
            reason(DISK_TOO_SMALL, f"({target.min_disk} GB > {server.system_disk_size} GB)")
        )
    return found


def _billing_rules(target: ImageFacts, current: ImageFacts | None) -> list[Reason]:
    found = []
    if target.image_type == MARKETPLACE and not target.product_code:
        found.append(reason(MARKET_PRODUCT_MISSING))
    if current is None:
        # Without the current image we cannot prove free→free or same-product; refusing
        # is the only safe answer for a change that bills the customer.
        found.append(reason(CURRENT_IMAGE_UNKNOWN))
    elif current.paid != target.paid:
        found.append(reason(FREE_PAID_MISMATCH))
    elif current.paid and current.product_code != target.product_code:
        found.append(reason(PAID_PRODUCT_MISMATCH))
    return found


def _warnings(server: ServerFacts) -> tuple[Reason, ...]:
    found = []
    if server.session_count > 0:
        found.append(reason(ACTIVE_SESSIONS, _("(%(n)d active)") % {"n": server.session_count}))
    if not server.maintain_status:
        found.append(reason(NOT_IN_MAINTENANCE))
    return tuple(found)
