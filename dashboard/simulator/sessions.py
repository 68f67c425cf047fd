"""User sessions on the simulated servers: the seeded users, one record per session.

A server's `session_count` stays the authority the server list shows; `SimState` keeps one
live `UserSession` per counted session (seeding or ending sessions whenever the count is set
another way) and turns a session `SignedOut` when it ends, keeping it as history as the
cloud's ListSessions does.
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from dashboard.simulator.fleet import uuid4_text

# Session states as ListSessions names them.
ACTIVE = "Active"
DISCONNECTED = "Disconnected"
APPC_INIT = "AppcInit"
SIGNED_OUT = "SignedOut"
INIT_FAIL = "InitFail"
STATES = (ACTIVE, DISCONNECTED, APPC_INIT, SIGNED_OUT, INIT_FAIL)
LIVE = frozenset({ACTIVE, DISCONNECTED, APPC_INIT})

FIRST_NAMES = (
    "alice", "bob", "chen", "diego", "emma", "farah", "george", "hana", "ivan", "julia",
    "kenji", "lena", "mohamed", "nora", "oscar", "priya", "quentin", "rosa", "sam", "tara",
    "umar", "vera", "wei", "yusuf", "zoe",
)  # fmt: skip
LAST_NAMES = (
    "wong", "smith", "li", "garcia", "muller", "khan", "novak", "tanaka", "silva", "okafor",
    "rossi", "kim", "dubois", "jensen", "patel",
)  # fmt: skip
APPS = ("Excel", "Word", "AutoCAD", "Photoshop", "SAP GUI", "Outlook", "HR Portal")


@dataclass
class UserSession:
    id: str
    server_id: str
    user_name: str
    started: datetime
    state: str = ACTIVE
    ended: datetime | None = None
    logoff_at: datetime | None = None  # set by LogoffUserSession: ends then
    app_name: str = ""
    client_ip: str = ""
    client_name: str = ""
    os_session_id: str = ""

    @property
    def live(self) -> bool:
        return self.state in LIVE


class SessionFactory:
    """Deterministic sessions from their own seeded RNG (fleet and job draws stay put)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed * 7919 + 3)
        # `choice(seq)` is `seq[_randbelow(len(seq))]` and `randrange(a, b)` is
        # `a + _randbelow(b - a)`: the same draws, without the wrappers' cost per session.
        self._below = self.rng._randbelow
        self.serial = 0

    def user_name(self) -> str:
        below = self._below
        return f"{FIRST_NAMES[below(len(FIRST_NAMES))]}.{LAST_NAMES[below(len(LAST_NAMES))]}"

    def make(
        self, server_id: str, now: datetime, user: str | None = None, *, seeded: bool = False
    ) -> UserSession:
        """A new session; a seeded one started up to ten hours ago, maybe disconnected."""
        rng, below = self.rng, self._below
        self.serial += 1
        # randint(300, 36_000), then one draw for the state, in this order
        started = now - timedelta(seconds=300 + below(35_701)) if seeded else now
        state = DISCONNECTED if seeded and rng.random() < 0.2 else ACTIVE
        return UserSession(
            id=uuid4_text(rng.getrandbits(128)),
            server_id=server_id,
            user_name=user or self.user_name(),
            started=started,
            state=state,
            app_name=APPS[below(len(APPS))],
            client_ip=f"192.168.{1 + below(254)}.{2 + below(253)}",  # randrange(1, 255), (2, 255)
            client_name=f"PC-{10_000 + below(89_999)}",  # randrange(10_000, 99_999)
            os_session_id=str(1 + self.serial % 64),
        )
