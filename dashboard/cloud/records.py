"""Typed records of what the cloud returns. Nothing downstream sees raw JSON.

Image types use one vocabulary everywhere in the dashboard: private, shared, public,
marketplace (see `ImageType`). The wire vocabularies differ per API and are translated
at this boundary (WorkspaceApp `gold` = marketplace; IMS `gold` = public, `market` =
marketplace).
"""

from dataclasses import dataclass, field
from datetime import datetime


class ImageType:
    PRIVATE = "private"
    SHARED = "shared"
    PUBLIC = "public"
    MARKETPLACE = "marketplace"
    OTHER = "other"


@dataclass(frozen=True)
class Server:
    id: str
    name: str
    machine_name: str = ""
    group_id: str = ""
    group_name: str = ""
    image_id: str = ""
    os_type: str = ""
    os_version: str = ""
    status: str = ""  # ServerStatus: REGISTERED, MAINTAINING, FREEZE, STOPPED, …
    vm_status: str = ""
    task_status: str = ""  # "" when idle (the API says null or "null")
    maintain_status: bool = False
    session_count: int = 0
    frozen: bool = False
    architecture: str = ""  # x86 / arm, from product_info
    system_disk_size: int | None = None  # GB, from product_info
    ip_addresses: tuple[str, ...] = ()
    availability_zone: str = ""
    job_id: str = ""
    job_type: str = ""
    job_status: str = ""  # WAITING, RUNNING, SUCCESS, FAILED
    job_time: datetime | None = None
    create_time: datetime | None = None


@dataclass(frozen=True)
class ServerGroup:
    id: str
    name: str
    description: str = ""
    os_type: str = ""
    image_id: str = ""
    image_name: str = ""
    image_type: str = ""  # normalized (ImageType), "" when the API does not say
    image_product_id: str = ""
    app_type: str = ""
    architecture: str = ""
    system_disk_size: int | None = None
    server_count: int = 0


@dataclass(frozen=True)
class Image:
    id: str
    name: str
    image_type: str  # normalized (ImageType)
    os_type: str = ""
    os_version: str = ""
    architecture: str = ""  # x86 / arm
    status: str = ""  # active, queued, saving, deleted, killed
    min_disk: int = 0  # GB
    paid: bool = False
    product_code: str = ""  # marketplace product id (image_product_id for a change)
    created_at: datetime | None = None


@dataclass(frozen=True)
class ChangeTarget:
    """What batch-change-image needs to know about the target image."""

    image_id: str
    image_type: str  # normalized (ImageType); translated to the wire value by the client
    os_type: str
    image_product_id: str = ""
    update_access_agent: bool = False


@dataclass(frozen=True)
class ChangeItem:
    """One server's outcome in a batch-change-image answer."""

    server_id: str
    job_id: str = ""
    error_code: str = ""
    error_message: str = ""

    @property
    def accepted(self) -> bool:
        return bool(self.job_id) and not self.error_code


@dataclass(frozen=True)
class ChangeResult:
    items: tuple[ChangeItem, ...]
    request_id: str = ""


@dataclass(frozen=True)
class SubJob:
    id: str
    job_id: str
    job_type: str = ""
    status: str = ""  # JobDetailStatus
    begin_time: datetime | None = None
    end_time: datetime | None = None
    error_code: str = ""
    error_message: str = ""
    resource_id: str = ""  # the server id
    resource_name: str = ""


@dataclass(frozen=True)
class Job:
    id: str
    job_type: str = ""
    status: str = ""  # WAITING, RUNNING, SUCCESS, FAILED
    begin_time: datetime | None = None
    end_time: datetime | None = None
    sub_jobs: tuple[SubJob, ...] = field(default_factory=tuple)

    def sub_job_for(self, server_id: str) -> SubJob | None:
        """The sub-job whose resource is `server_id`, when a job covers several servers."""
        for sub in self.sub_jobs:
            if sub.resource_id == server_id:
                return sub
        return None


class SessionState:
    """ListSessions `session_state` values."""

    ACTIVE = "Active"
    DISCONNECTED = "Disconnected"
    APPC_INIT = "AppcInit"  # initialising
    SIGNED_OUT = "SignedOut"
    INIT_FAIL = "InitFail"
    LIVE = (ACTIVE, DISCONNECTED, APPC_INIT)  # a user is (or is about to be) on the server


@dataclass(frozen=True)
class Session:
    """A user session (ListSessions SessionInfo) on an application server."""

    id: str  # what LogoffUserSession takes in `session_ids`
    server_id: str = ""  # resolved by the client from machine_name (or vm_ip); "" if unknown
    user_name: str = ""  # login_user
    state: str = ""  # SessionState
    start_time: datetime | None = None
    end_time: datetime | None = None
    machine_name: str = ""
    vm_ip: str = ""
    group_id: str = ""  # app_server_group_id
    app_name: str = ""
    session_type: str = ""  # "1" shared desktop, "2" application
