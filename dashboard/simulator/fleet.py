"""A seeded, deterministic fleet: server groups, servers and images of every kind.

`build_fleet(servers, seed)` always returns the same fleet for the same arguments. The first
servers cover every scenario once (so even a tiny test fleet has each case); the rest are drawn
from weighted scenarios with a seeded RNG. A `salt` (another project's id) draws a different
fleet from the same seed, so two projects of one simulator never share an id; `prefix` starts
its group and server names (the project's region), so a reader can tell the fleets apart.
"""

import itertools
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

WINDOWS, LINUX = "Windows", "Linux"
# Kinds use the dashboard's vocabulary; each API's wire vocabulary is derived in app views.
PRIVATE, SHARED, PUBLIC, MARKETPLACE = "private", "shared", "public", "marketplace"

FLEET_EPOCH = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DISK_GB = 80

GROUP_NAMES = (
    "finance-apps",
    "engineering-cad",
    "call-center",
    "design-adobe",
    "hr-portal",
    "sales-crm",
    "legal-docs",
    "support-desk",
    "training-lab",
    "exec-office",
)

# One image family per group kind: (family prefix, os_version, kind, product code, price).
FAMILIES = {
    "office": ("win2019-office", "Windows Server 2019 Datacenter 64bit", PRIVATE, "", ""),
    "cad": ("win2022-cad", "Windows Server 2022 Datacenter 64bit", PRIVATE, "", ""),
    "callcenter": ("win2019-callcenter", "Windows Server 2019 Datacenter 64bit", PRIVATE, "", ""),
    "adobe": (
        "adobe-cc-win2022",
        "Windows Server 2022 Datacenter 64bit",
        MARKETPLACE,
        "OFFI863100000001",
        "0.45",
    ),
    "hr": ("win2022-hr", "Windows Server 2022 Datacenter 64bit", PRIVATE, "", ""),
}
GROUP_FAMILY = ("office", "cad", "callcenter", "adobe", "hr")
GENERATIONS = ("2026.08", "2026.09", "2026.10", "2026.11")


@dataclass
class Image:
    id: str
    name: str
    kind: str  # private / shared / public / marketplace
    os_type: str
    os_version: str
    platform: str
    architecture: str = "x86"
    status: str = "active"
    min_disk: int = 40
    min_ram: int = 2048
    paid: bool = False
    product_code: str = ""
    price: str = ""
    size: int = 21474836480
    created_at: datetime = FLEET_EPOCH


@dataclass
class Group:
    id: str
    name: str
    image_id: str
    family: str
    subnet_id: str
    create_time: datetime
    app_type: str = "COMMON_APP"
    description: str = ""


@dataclass
class SeedJob:
    """A job that existed before the simulator started (relative to its start for live ones)."""

    job_type: str
    started: datetime | None  # absolute start, or None = `started_ago` before the clock start
    started_ago: float = 0.0
    duration: float = 600.0
    fails: bool = False


@dataclass
class Server:
    id: str
    name: str
    machine_name: str
    group_id: str
    image_id: str
    os_type: str
    os_version: str
    ip: str
    mac: str
    port_id: str
    create_time: datetime
    status: str = "REGISTERED"
    vm_status: str = "ACTIVE"
    maintain_status: bool = False
    session_count: int = 0
    freeze: list[dict] = field(default_factory=list)
    availability_zone: str = "cn-north-4a"
    scaling_auto_create: bool = False
    seed_job: SeedJob | None = None
    scenario: str = ""


@dataclass
class Fleet:
    groups: list[Group]
    servers: list[Server]
    images: list[Image]
    vpc_id: str


# Scenario name → weight for servers beyond the guaranteed first round.
SCENARIOS = {
    "current": 40,
    "drifted": 22,
    "drifted_maintenance": 8,
    "busy_sessions": 12,
    "stopped": 5,
    "maintaining": 5,
    "frozen": 3,
    "job_running": 3,
    "drifted_sessions": 2,
}


SCENARIO_NAMES = tuple(SCENARIOS)
SCENARIO_CUM_WEIGHTS = tuple(itertools.accumulate(SCENARIOS.values()))
MACHINE_NAME_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def uuid4_text(bits: int) -> str:
    """`str(uuid.UUID(int=bits, version=4))` without building a UUID (fleets are large)."""
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)  # the RFC 4122 variant
    bits = (bits & ~(0xF000 << 64)) | (4 << 76)  # version 4
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class _Ids:
    """Deterministic UUIDs from the fleet's RNG."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        # `choice(seq)` is `seq[_randbelow(len(seq))]` and `randrange(n)` is `_randbelow(n)`:
        # calling it directly draws the same numbers without the wrappers' cost.
        self.below = rng._randbelow

    def uuid(self) -> str:
        return uuid4_text(self.rng.getrandbits(128))

    def token(self, n: int) -> str:
        below, size = self.below, len(MACHINE_NAME_CHARS)
        return "".join([MACHINE_NAME_CHARS[below(size)] for _ in range(n)])


def build_fleet(
    servers: int = 120,
    seed: int = 1,
    *,
    salt: str = "",
    prefix: str = "",
    region: str = "cn-north-4",
) -> Fleet:
    """The fleet for `servers` servers and `seed` (and `salt`, `prefix`, `region`); equal
    arguments give an equal fleet."""
    # A string seed is hashed with SHA-512, so a salted fleet is the same in every process.
    rng = random.Random(f"{seed}/{salt}" if salt else seed)
    ids = _Ids(rng)
    images = _build_images(ids)
    by_name = {i.name: i for i in images}
    groups = _build_groups(ids, by_name, _group_count(servers), prefix)
    vpc_id = ids.uuid()
    zones = tuple(f"{region}{letter}" for letter in "abc")
    fleet_servers = [
        _build_server(
            ids, rng, n, groups[n % len(groups)], by_name, _scenario(rng, n, len(groups)), zones
        )
        for n in range(servers)
    ]
    return Fleet(groups=groups, servers=fleet_servers, images=images, vpc_id=vpc_id)


def _group_count(servers: int) -> int:
    return max(5, min(50, servers // 100))


def _scenario(rng: random.Random, n: int, groups: int) -> str:
    names = SCENARIO_NAMES
    if n < len(names) * groups:
        # The first rounds walk the scenarios diagonally: a fleet of a few dozen servers
        # already has every scenario, and every group meets every scenario early.
        return names[(n // groups + n % groups) % len(names)]
    # The same draw as `choices(names, weights=…)`, which accumulates the weights each time.
    return rng.choices(names, cum_weights=SCENARIO_CUM_WEIGHTS)[0]


def _build_images(ids: _Ids) -> list[Image]:
    images: list[Image] = []
    for family, (prefix, os_version, kind, product, price) in FAMILIES.items():
        for g, generation in enumerate(GENERATIONS):
            images.append(
                Image(
                    id=ids.uuid(),
                    name=f"{prefix}-{generation}",
                    kind=kind,
                    os_type=WINDOWS,
                    os_version=os_version,
                    platform="Windows",
                    min_disk=40 if family != "cad" else 60,
                    min_ram=4096,
                    paid=bool(product),
                    product_code=product,
                    price=price,
                    created_at=FLEET_EPOCH + timedelta(days=150 + 30 * g, hours=len(family)),
                )
            )
    win19 = "Windows Server 2019 Datacenter 64bit"
    win22 = "Windows Server 2022 Datacenter 64bit"
    extras = [
        Image(ids.uuid(), "win2022-shared-baseline-2026.10", SHARED, WINDOWS, win22, "Windows"),
        Image(ids.uuid(), "Windows Server 2019 Datacenter 64bit English", PUBLIC, WINDOWS, win19,
              "Windows"),
        Image(ids.uuid(), "Windows Server 2022 Datacenter 64bit English", PUBLIC, WINDOWS, win22,
              "Windows"),
        Image(ids.uuid(), "autocad-lt-win2022-2026.11", MARKETPLACE, WINDOWS, win22, "Windows",
              paid=True, product_code="OFFI863100000002", price="1.20"),
        Image(ids.uuid(), "ubuntu-22.04-apps-2026.11", PRIVATE, LINUX, "Ubuntu 22.04 server 64bit",
              "Ubuntu"),
        Image(ids.uuid(), "win2022-arm-office-2026.11", PRIVATE, WINDOWS, win22, "Windows",
              architecture="arm"),
        Image(ids.uuid(), "win2019-office-2026.12-rc", PRIVATE, WINDOWS, win19, "Windows",
              status="queued"),
        Image(ids.uuid(), "win2019-office-bigdisk-2026.11", PRIVATE, WINDOWS, win19, "Windows",
              min_disk=200),
    ]  # fmt: skip
    for n, image in enumerate(extras):
        image.created_at = FLEET_EPOCH + timedelta(days=200 + n, hours=3)
    return images + extras


def _family_images(by_name: dict[str, Image], family: str) -> list[Image]:
    prefix = FAMILIES[family][0]
    return [by_name[f"{prefix}-{g}"] for g in GENERATIONS]


def _build_groups(
    ids: _Ids, by_name: dict[str, Image], count: int, prefix: str = ""
) -> list[Group]:
    groups = []
    for n in range(count):
        base = GROUP_NAMES[n % len(GROUP_NAMES)]
        name = base if n < len(GROUP_NAMES) else f"{base}-{n // len(GROUP_NAMES) + 1:02d}"
        name = f"{prefix}-{name}" if prefix else name
        family = GROUP_FAMILY[n % len(GROUP_FAMILY)]
        newest = _family_images(by_name, family)[-1]
        groups.append(
            Group(
                id=ids.uuid(),
                name=name,
                image_id=newest.id,
                family=family,
                subnet_id=ids.uuid(),
                create_time=FLEET_EPOCH + timedelta(days=n % 28, hours=n % 24),
                app_type="SESSION_DESKTOP_APP" if family == "hr" else "COMMON_APP",
                description=f"{name.replace('-', ' ')} application servers",
            )
        )
    return groups


def _build_server(
    ids: _Ids,
    rng: random.Random,
    n: int,
    group: Group,
    by_name: dict[str, Image],
    scenario: str,
    zones: tuple[str, ...] = ("cn-north-4a", "cn-north-4b", "cn-north-4c"),
) -> Server:
    family = _family_images(by_name, group.family)
    drifted = scenario.startswith("drifted")
    image = rng.choice(family[:-1]) if drifted else family[-1]
    created = FLEET_EPOCH + timedelta(days=1 + n % 60, minutes=n)
    server = Server(
        id=ids.uuid(),
        name=f"{group.name}-{n + 1:04d}",
        machine_name=f"APS-{ids.token(10)}",
        group_id=group.id,
        image_id=image.id,
        os_type=image.os_type,
        os_version=image.os_version,
        ip=f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{(n & 255) or 1}",
        mac="fa:16:3e:" + ":".join([f"{ids.below(256):02x}" for _ in range(3)]),
        port_id=ids.uuid(),
        create_time=created,
        availability_zone=rng.choice(zones),
        seed_job=SeedJob("CREATE_SERVER", started=created, duration=420.0),
        scenario=scenario,
    )
    _apply_scenario(server, rng, scenario)
    return server


def _apply_scenario(server: Server, rng: random.Random, scenario: str) -> None:
    if scenario in ("busy_sessions", "drifted_sessions"):
        server.session_count = rng.randint(1, 12)
    elif scenario == "current":
        server.session_count = rng.choice((0, 0, 1, 3))
    elif scenario == "stopped":
        server.status, server.vm_status = "STOPPED", "SHUTOFF"
    elif scenario in ("maintaining", "drifted_maintenance"):
        server.status, server.maintain_status = "MAINTAINING", True
    elif scenario == "frozen":
        server.status, server.vm_status = "FREEZE", "FREEZE"
        server.freeze = [{"effect": 1, "scene": "ARREAR"}]
    elif scenario == "job_running":
        server.seed_job = SeedJob("UPGRADE_ACCESS_AGENT", started=None, started_ago=60.0,
                                  duration=4 * 3600.0)  # fmt: skip
