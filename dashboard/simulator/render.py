"""The wire shapes: servers, groups, images (per API vocabulary) and jobs as JSON dicts.

ListServers pages are written as JSON text directly (`server_json`, `listing`): the same
bytes as `json.dumps` of the dicts, at a fraction of the cost.
"""

import json
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from json.encoder import encode_basestring_ascii
from typing import Any

from dashboard.simulator import batches
from dashboard.simulator.fleet import MARKETPLACE, PRIVATE, PUBLIC, SHARED, Group, Image, Server
from dashboard.simulator.jobs import ACTIVE, CHANGE_SERVER_IMAGE, V1_STATUS, Job
from dashboard.simulator.sessions import UserSession
from dashboard.simulator.state import ARCHITECTURE, SYSTEM_DISK_GB, SimState, iso

# image kind → each API's image type word (they differ; see the reference's vocabulary table)
WORKSPACEAPP_TYPE = {PRIVATE: "private", SHARED: "shared", PUBLIC: "public", MARKETPLACE: "gold"}
IMS_TYPE = {PRIVATE: "private", SHARED: "shared", PUBLIC: "gold", MARKETPLACE: "market"}
WORKSPACE_TYPE = {PRIVATE: "private", SHARED: "shared", PUBLIC: "gold", MARKETPLACE: "gold"}
TASK_STATUS = {CHANGE_SERVER_IMAGE: "rebuilding", "UPGRADE_ACCESS_AGENT": "upgrading_access_agent"}
FLAVOR_ID = "s6.xlarge.2"
PRODUCT_ID = "workspace.appstream.general.xlarge.2"
SESSION_PUBLIC_IP = "203.0.113.10"  # every simulated client leaves through one NAT address


def product_info() -> dict[str, Any]:
    return {
        "product_id": PRODUCT_ID,
        "flavor_id": FLAVOR_ID,
        "type": "BASE",
        "architecture": ARCHITECTURE,
        "cpu": "4",
        "memory": "8192",
        "is_gpu": False,
        "system_disk_type": "SAS",
        "system_disk_size": str(SYSTEM_DISK_GB),
        "gpu_desc": "",
        "descriptions": "4 vCPUs | 8 GiB | general computing",
        "charge_mode": "0",
        "contain_data_disk": False,
        "resource_type": "hws.resource.type.workspace.appstream",
        "cloud_service_type": "hws.service.type.vdi",
        "volume_product_type": "workspace",
        "sessions": 20,
        "status": "normal",
        "cond_operation_az": "cn-north-4a(normal),cn-north-4b(normal),cn-north-4c(normal)",
        "sub_product_list": [],
        "domain_ids": [],
        "package_type": "general",
        "expire_time": "",
        "support_gpu_type": "",
    }


def server(state: SimState, s: Server, now: datetime, detail: bool = False) -> dict[str, Any]:
    group = state.group_of(s)
    image = state.image(s.image_id)
    job = state.job_of(s)
    job_status = job.status(now) if job else None
    busy = job is not None and job_status in ACTIVE
    vm_status = "REBUILD" if busy and job.job_type == CHANGE_SERVER_IMAGE else s.vm_status
    body: dict[str, Any] = {
        "id": s.id,
        "name": s.name,
        "machine_name": s.machine_name,
        "description": "",
        "server_group_id": s.group_id,
        "server_group_name": group.name if group else "",
        "flavor": {"id": FLAVOR_ID, "links": []},
        "status": s.status,
        "create_time": iso(s.create_time),
        "update_time": iso(job.created if job else s.create_time),
        "image_id": s.image_id,
        "availability_zone": s.availability_zone,
        "domain": "corp.example.com",
        "ou_name": "AppServers",
        "sid": "",
        "instance_id": s.id,
        "os_version": s.os_version,
        "os_type": s.os_type,
        "order_id": "",
        "maintain_status": s.maintain_status,
        "scaling_auto_create": s.scaling_auto_create,
        "job_id": batches.public_id(state, job) if job else "",
        "job_type": job.job_type if job else None,
        "job_status": job_status,
        "job_time": iso(job.created) if job else None,
        "resource_pool_id": "",
        "resource_pool_type": "private",
        "host_id": s.id,
        "session_count": s.session_count,
        "vm_status": vm_status,
        # the published example writes an idle task_status as the string "null"
        "task_status": TASK_STATUS.get(job.job_type, "null") if busy else "null",
        "freeze": list(s.freeze),
        "product_info": product_info(),
        "metadata": _metadata(s, image),
        "host_address": [_nic(state, s)],
        "enterprise_project_id": "0",
        "tags": [],
    }
    if detail:
        body["addresses"] = {state.vpc_id: [_address(s)]}
        body["security_groups"] = []
        body["data_volumes"] = []
    return body


# Encodes as `json.dumps` does (ASCII, ", " and ": "), without its check for circular
# references, which no answer can have and which took about half of a page's encoding time.
ENCODER = json.JSONEncoder(check_circular=False)
PRODUCT_INFO_JSON = ENCODER.encode(product_info())
FLAVOR_JSON = ENCODER.encode({"id": FLAVOR_ID, "links": []})


@dataclass(frozen=True)
class JSONText:
    """An answer's body already encoded (the app sends `text` as it is)."""

    text: str


def listing(count: int, items: list[str]) -> JSONText:
    """`{"count": …, "items": […]}` from items already encoded (`server_json`)."""
    return JSONText(f'{{"count": {int.__repr__(count)}, "items": [{", ".join(items)}]}}')


def _json(value: Any) -> str:
    """`json.dumps(value)`, with the common cases (str, bool, None, int) taken directly."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    return ENCODER.encode(value)


def server_json(state: SimState, s: Server, now: datetime) -> str:
    """`json.dumps(server(state, s, now))`, written directly: a listing page is 100 servers
    of 40 fields each, and building the dicts and encoding them was most of its cost. The
    fields that never change for a server are encoded once (_fixed_parts).

    Field for field the same as `server` (same order, same values, same encoding);
    tests/test_simulator_pinned.py compares the two on every server of a seeded fleet in
    every state, and pins every answer.
    """
    head, machine, created, placed, scaling, pool, nic = _fixed_parts(state, s)
    group = state.groups.get(s.group_id)
    image = state.images.get(s.image_id)
    job = state.job_of(s)
    job_status = job.status(now) if job else None
    busy = job is not None and job_status in ACTIVE
    vm_status = "REBUILD" if busy and job.job_type == CHANGE_SERVER_IMAGE else s.vm_status
    freeze = list(s.freeze)
    j = _json
    if job is None:
        job_fields = '"job_id": "", "job_type": null, "job_status": null, "job_time": null'
        update_time = created
    else:
        update_time = job_time = j(iso(job.created))
        job_fields = (
            f'"job_id": {j(batches.public_id(state, job))}, "job_type": {j(job.job_type)}, '
            f'"job_status": {j(job_status)}, "job_time": {job_time}'
        )
    task_status = TASK_STATUS.get(job.job_type, "null") if busy else "null"
    group_name, subnet_id = (group.name, group.subnet_id) if group else ("", "")
    image_type = IMS_TYPE[image.kind] if image else "private"
    image_name = image.name if image else ""
    ecm_status = '"freeze"' if s.freeze else '"normal"'
    return (
        f'{head}{j(s.name)}{machine}{j(group_name)}, "flavor": {FLAVOR_JSON}, '
        f'"status": {j(s.status)}, "create_time": {created}, '
        f'"update_time": {update_time}, "image_id": {j(s.image_id)}, {placed}'
        f'"maintain_status": {j(s.maintain_status)}, {scaling}{job_fields}, {pool}'
        f'"session_count": {j(s.session_count)}, "vm_status": {j(vm_status)}, '
        f'"task_status": {j(task_status)}, "freeze": {j(freeze) if freeze else "[]"}, '
        f'"product_info": {PRODUCT_INFO_JSON}, '
        f'"metadata": {{"charging_mode": "0", "metering.image_id": {j(s.image_id)}, '
        f'"metering.imagetype": {j(image_type)}, "metering.resourcespeccode": {j(FLAVOR_ID)}, '
        f'"image_name": {j(image_name)}, "os_bit": "64", '
        f'"EcmResStatus": {ecm_status}}}, '
        f'{nic}{j(subnet_id)}, "tenant_type": "tenant"}}], '
        f'"enterprise_project_id": "0", "tags": []}}'
    )


def _fixed_parts(state: SimState, s: Server) -> tuple[str, ...]:
    """The encoded text around the fields of `s` that change (the fields no call and no
    patch changes: its id, machine name, group, creation, placement, addresses), kept in
    the state for as long as `s` is the server of that id (a restored state file brings
    servers of its own): a third of each listing's encoding work."""
    kept = state.rendered.get(s.id)
    if kept is not None and kept[0] is s:
        return kept[1]
    j = _json
    parts = (
        f'{{"id": {j(s.id)}, "name": ',
        f', "machine_name": {j(s.machine_name)}, "description": "", '
        f'"server_group_id": {j(s.group_id)}, "server_group_name": ',
        j(iso(s.create_time)),
        f'"availability_zone": {j(s.availability_zone)}, "domain": "corp.example.com", '
        f'"ou_name": "AppServers", "sid": "", "instance_id": {j(s.id)}, '
        f'"os_version": {j(s.os_version)}, "os_type": {j(s.os_type)}, "order_id": "", ',
        f'"scaling_auto_create": {j(s.scaling_auto_create)}, ',
        f'"resource_pool_id": "", "resource_pool_type": "private", "host_id": {j(s.id)}, ',
        f'"host_address": [{{"addr": {j(s.ip)}, "version": 4, "OS-EXT-IPS:type": "fixed", '
        f'"OS-EXT-IPS-MAC:mac_addr": {j(s.mac)}, "OS-EXT-IPS:port_id": {j(s.port_id)}, '
        f'"vpc_id": {j(state.vpc_id)}, "subnet_id": ',
    )
    state.rendered[s.id] = (s, parts)
    return parts


def _metadata(s: Server, image: Image | None) -> dict[str, str]:
    return {
        "charging_mode": "0",
        "metering.image_id": s.image_id,
        "metering.imagetype": IMS_TYPE[image.kind] if image else "private",
        "metering.resourcespeccode": FLAVOR_ID,
        "image_name": image.name if image else "",
        "os_bit": "64",
        "EcmResStatus": "freeze" if s.freeze else "normal",
    }


def _nic(state: SimState, s: Server) -> dict[str, Any]:
    group = state.group_of(s)
    return {
        "addr": s.ip,
        "version": 4,
        "OS-EXT-IPS:type": "fixed",
        "OS-EXT-IPS-MAC:mac_addr": s.mac,
        "OS-EXT-IPS:port_id": s.port_id,
        "vpc_id": state.vpc_id,
        "subnet_id": group.subnet_id if group else "",
        "tenant_type": "tenant",
    }


def _address(s: Server) -> dict[str, Any]:
    return {
        "addr": s.ip,
        "version": "4",
        "OS-EXT-IPS-MAC:mac_addr": s.mac,
        "OS-EXT-IPS:port_id": s.port_id,
        "OS-EXT-IPS:type": "fixed",
    }


def group(state: SimState, g: Group, detail: bool = False) -> dict[str, Any]:
    image = state.image(g.image_id)
    body: dict[str, Any] = {
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "image_id": g.image_id,
        "image_name": image.name if image else "",
        "os_type": image.os_type if image else "Windows",
        "product_id": PRODUCT_ID,
        "product_info": product_info(),
        "subnet_id": g.subnet_id,
        "subnet_name": f"subnet-{g.name}",
        "system_disk_type": "SAS",
        "system_disk_size": SYSTEM_DISK_GB,
        "is_vdi": False,
        "extra_session_type": "CPU",
        "extra_session_size": 0,
        "app_type": g.app_type,
        "create_time": iso(g.create_time),
        "update_time": iso(g.create_time + timedelta(days=1)),
        "storage_mount_policy": "ANY",
        "enterprise_project_id": "0",
        "primary_server_group_ids": [],
        "secondary_server_group_ids": [],
        "server_group_status": True,
        "site_type": "CENTER",
        "site_id": state.config.region,
        "app_server_flavor_count": 1,
        "app_server_count": state.servers_in(g.id),
        "app_group_count": 1,
        "ou_name": "AppServers",
        "tags": [],
    }
    if detail:
        body["flavors"] = [{"id": FLAVOR_ID, "links": []}]
        body["project_name"] = state.config.region
        body["image_min_disk"] = image.min_disk if image else 0
        body["image_product_id"] = image.product_code if image else ""
        # ShowServerGroup documents only gold (marketplace) and private here
        body["image_type"] = "gold" if image and image.kind == MARKETPLACE else "private"
    return body


def ims_image_visibility(i: Image) -> str:
    return {PRIVATE: "private", SHARED: "shared"}.get(i.kind, "public")


def ims_image(state: SimState, i: Image) -> dict[str, Any]:
    """An IMS image (ListImages /v2/cloudimages, GlanceShowImage): many booleans are strings."""
    return {
        "id": i.id,
        "name": i.name,
        "status": i.status,
        "visibility": ims_image_visibility(i),
        "owner": state.config.project_id if i.kind == PRIVATE else "public-images-owner",
        "protected": i.kind in (PUBLIC, MARKETPLACE),
        "__imagetype": IMS_TYPE[i.kind],
        "__os_type": i.os_type,
        "__os_version": i.os_version,
        "__platform": i.platform,
        "__os_bit": "64",
        "__support_arm": "true" if i.architecture == "arm" else "false",
        "__support_amd": "false" if i.architecture == "arm" else "true",
        "__isregistered": "true",
        "__account_code": f"acct-{i.product_code.lower()}" if i.paid else "",
        "__productcode": i.product_code,
        "__is_offshelved": "false",
        "__data_origin": "instance,ecs-template" if i.kind == PRIVATE else "",
        "__originalimagename": "",
        "__image_source_type": "uds",
        "__image_size": str(i.size),
        "min_disk": i.min_disk,
        "min_ram": i.min_ram,
        "disk_format": "zvhd2",
        "container_format": "bare",
        "virtual_env_type": "FusionCompute",
        "enterprise_project_id": "0",
        "created_at": iso(i.created_at, millis=False),
        "updated_at": iso(i.created_at + timedelta(hours=2), millis=False),
        "active_at": iso(i.created_at + timedelta(minutes=20), millis=False),
        "self": f"/v2/images/{i.id}",
        "file": f"/v2/images/{i.id}/file",
        "schema": "/v2/schemas/image",
        "tags": [],
    }


def workspace_image(i: Image) -> dict[str, Any]:
    """Workspace ListImages' ImageInfo."""
    return {
        "id": i.id,
        "name": i.name,
        "image_type": WORKSPACE_TYPE[i.kind],
        "os_type": i.os_type,
        "os_version": i.os_version,
        "architecture": i.architecture,
        "disk_format": "zvhd2",
        "min_ram": i.min_ram,
        "min_disk": i.min_disk,
        "product_code": i.product_code,
        "created_at": iso(i.created_at),
        "kms_id": "",
    }


def market_image(i: Image) -> dict[str, Any]:
    """Workspace ListMarketImages' entry."""
    return {
        "image_id": i.id,
        "name": i.name,
        "image_type": "gold",
        "os_type": i.os_type,
        "os_version": i.os_version,
        "os_bit": "64",
        "platform": i.platform,
        "min_disk": i.min_disk,
        "min_ram": i.min_ram,
        "max_ram": 0,
        "image_size": str(i.size),
        "created_at": iso(i.created_at),
        "updated_at": iso(i.created_at + timedelta(hours=2)),
        "product_code": i.product_code,
        "market_resource_type_code": "hws.resource.type.marketplace.image",
        "market_service_type_code": "hws.service.type.marketplace",
        "status": i.status,
        "tags": [],
    }


def sub_job(state: SimState, job: Job, now: datetime) -> dict[str, Any]:
    code, message = job.sub_error(now)
    return {
        "id": job.sub_id,
        "job_id": batches.public_id(state, job),
        "job_type": job.job_type,
        "status": job.status(now),
        "begin_time": iso(job.begin_time(now)),
        "end_time": iso(job.end_time(now)),
        "error_code": code,
        "error_message": message,
        "project_id": state.config.project_id,
        "job_resource_info": {"resource_id": job.server_id, "resource_name": job.server_name},
    }


def job_detail(state: SimState, job: Job, now: datetime) -> dict[str, Any]:
    """ShowJobDetail (v2): one sub-job per job, for the job's one server."""
    return {
        "id": job.id,
        "job_type": job.job_type,
        "status": job.status(now),
        "begin_time": iso(job.begin_time(now) or job.created),
        "end_time": iso(job.end_time(now)),
        "sub_jobs_total": 1,
        "sub_jobs": [sub_job(state, job, now)],
    }


def job_v1(job: Job, now: datetime) -> dict[str, Any]:
    """ShowJob (v1), the older integer-status view."""
    status = V1_STATUS[job.status(now)]
    code, message = job.sub_error(now)
    begin = iso(job.begin_time(now) or job.created, millis=False)
    end = iso(job.end_time(now), millis=False)
    expected = iso(job.created + timedelta(seconds=job.duration), millis=False)
    entity = {"resource_id": job.server_id, "resource_name": job.server_name}
    return {
        "job": {
            "job_id": job.id,
            "job_type": 1,
            "job_status": status,
            "begin_time": begin,
            "end_time": end,
            "expected_end_time": expected,
            "execute_code": code or ("0" if status == 1 else ""),
            "execute_message": message or ("success" if status == 1 else ""),
            "sub_jobs": [
                {
                    "job_id": job.sub_id,
                    "job_type": 2,
                    "job_status": status,
                    "begin_time": begin,
                    "end_time": end,
                    "execute_code": code,
                    "execute_message": message,
                    "entities": [entity],
                }
            ],
        }
    }


def session_info(state: SimState, u: UserSession, now: datetime) -> dict[str, Any]:
    """A ListSessions SessionInfo (times with milliseconds, `null` while not ended)."""
    s = state.servers.get(u.server_id)
    g = state.group_of(s) if s else None
    changed = u.ended or u.started
    return {
        "id": u.id,
        "session_stamp": u.id.replace("-", "")[:16],
        "os_session_id": u.os_session_id,
        "protocol_type": "HDP",
        "login_user": u.user_name,
        # 1 shared desktop, 2 application
        "session_type": "1" if g and g.app_type == "SESSION_DESKTOP_APP" else "2",
        "app_server_group_id": s.group_id if s else "",
        "app_server_group_name": g.name if g else "",
        "pre_conn_time": iso(u.started - timedelta(seconds=2)),
        "start_time": iso(u.started),
        "end_time": iso(u.ended),
        "status_continue_time": str(int(((u.ended or now) - changed).total_seconds())),
        "machine_sid": f"S-1-5-21-{zlib.crc32(u.server_id.encode())}" if s else "",
        "machine_name": s.machine_name if s else "",
        "session_state": u.state,
        "app_name": u.app_name,
        "client_mac": "",
        "client_name": u.client_name,
        "client_ip": u.client_ip,
        "public_ip": SESSION_PUBLIC_IP,
        "client_version": "25.3.0",
        "client_type": "Windows",
        "agent_version": "25.3.0",
        "vm_ip": s.ip if s else "",
        "failed_reason": "",
        "failed_code": "",
        "last_update_status_time": iso(changed),
        "tenant_id": state.config.project_id,
        "primary_server_group_id": s.group_id if s else "",
        "secondary_server_group_id": "",
    }
