"""Which image change the simulated cloud accepts, written from the API's own text.

BatchChangeServerImage (and ChangeServerImage) say: the target `image_id` must differ from
the server's; only equivalent images may be swapped — the same operating system, a free image
for a free one, a paid image only for one of the same source at the same price; a marketplace
target needs its product id. The rest is what any cloud refuses before rebuilding a server: a
frozen or busy server, an image that is not ready, made for another architecture or for a
larger system disk, and (the docs say so today) anything but Windows.

These rules are the simulator's own. The dashboard has its own (`dashboard.compat`); if
either misreads the API, tests/test_compat_agreement.py shows the two disagree instead of one
confirming the other's mistake.
"""

from dataclasses import dataclass

from dashboard.simulator.fleet import MARKETPLACE, Image, Server

SUPPORTED_OS = "Windows"
READY = "active"

# Reasons, in the order they are reported; the first is the item's error.
UNKNOWN_IMAGE = "image_unknown"
SAME_IMAGE = "same_image"
SERVER_GONE = "server_gone"
FROZEN = "server_frozen"
BUSY = "server_busy"
NOT_READY = "image_not_active"
OTHER_OS = "os_mismatch"
UNSUPPORTED_OS = "os_unsupported"
OTHER_ARCHITECTURE = "arch_mismatch"
NO_PRODUCT = "market_product_missing"
CURRENT_UNKNOWN = "current_image_unknown"
FREE_FOR_PAID = "free_paid_mismatch"
OTHER_PRODUCT = "paid_product_mismatch"
DISK_TOO_SMALL = "disk_too_small"

MESSAGES = {
    UNKNOWN_IMAGE: "The image does not exist.",
    SAME_IMAGE: "The server already uses this image.",
    SERVER_GONE: "The server does not exist.",
    FROZEN: "The server is frozen.",
    BUSY: "The server has a task in progress.",
    NOT_READY: "The image is not available.",
    OTHER_OS: "The image's operating system differs from the server's.",
    UNSUPPORTED_OS: "Only Windows servers can change their image.",
    OTHER_ARCHITECTURE: "The image is built for another CPU architecture.",
    NO_PRODUCT: "A marketplace image needs its product id.",
    CURRENT_UNKNOWN: "The server's current image cannot be found to compare with.",
    FREE_FOR_PAID: "A free image and a paid image are not equivalent.",
    OTHER_PRODUCT: "Paid images are equivalent only with the same source and price.",
    DISK_TOO_SMALL: "The image needs a larger system disk.",
}


@dataclass(frozen=True)
class Refusal:
    name: str
    message: str


@dataclass(frozen=True)
class Verdict:
    action: str  # "change", "skip" (already on the image) or "blocked"
    reasons: tuple[Refusal, ...] = ()

    @property
    def ok(self) -> bool:
        return self.action == "change"

    @property
    def first(self) -> Refusal | None:
        return self.reasons[0] if self.reasons else None


def refusal(name: str) -> Refusal:
    return Refusal(name, MESSAGES[name])


def judge(
    server: Server,
    target: Image | None,
    current: Image | None,
    *,
    busy: bool,
    architecture: str,
    system_disk_gb: int,
) -> Verdict:
    """The cloud's answer for moving `server` (on `current`) to `target`."""
    if target is None:
        return Verdict("blocked", (refusal(UNKNOWN_IMAGE),))
    if target.id == server.image_id:
        return Verdict("skip", (refusal(SAME_IMAGE),))
    found = [refusal(name) for name in _server_state(server, busy)]
    found += [refusal(name) for name in _image(server, target, architecture)]
    found += [refusal(name) for name in _equivalence(target, current)]
    if target.min_disk > system_disk_gb:
        found.append(refusal(DISK_TOO_SMALL))
    return Verdict("blocked", tuple(found)) if found else Verdict("change")


def _server_state(server: Server, busy: bool) -> list[str]:
    return [name for name, hit in ((FROZEN, bool(server.freeze)), (BUSY, busy)) if hit]


def _image(server: Server, target: Image, architecture: str) -> list[str]:
    found = []
    if target.status != READY:
        found.append(NOT_READY)
    if target.os_type != server.os_type:
        found.append(OTHER_OS)
    elif target.os_type != SUPPORTED_OS:
        found.append(UNSUPPORTED_OS)
    if target.architecture != architecture:
        found.append(OTHER_ARCHITECTURE)
    return found


def _equivalence(target: Image, current: Image | None) -> list[str]:
    """Free for free; paid for paid of the same source (marketplace product) and price."""
    found = []
    if target.kind == MARKETPLACE and not target.product_code:
        found.append(NO_PRODUCT)
    if current is None:
        found.append(CURRENT_UNKNOWN)
    elif current.paid != target.paid:
        found.append(FREE_FOR_PAID)
    elif current.paid and (current.product_code, current.price) != (
        target.product_code,
        target.price,
    ):
        found.append(OTHER_PRODUCT)
    return found
