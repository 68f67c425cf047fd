"""Figure 5's other side: the same change scripted with the official SDK, serially.

List every server, change the chosen ones in batches of 50, then poll each job with
ShowJobDetail until it is final, advancing the simulator's manual clock by one job duration
after each polling round (where a script would sleep).
"""

import time

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkworkspaceapp.v1 import (
    BatchChangeServerImageReq,
    BatchChangeServerImageRequest,
    ListServersRequest,
    ShowJobDetailRequest,
    WorkspaceAppClient,
)

from bench import env

FINAL = {"SUCCESS", "FAILED"}


def sdk_client(sim: env.Sim) -> WorkspaceAppClient:
    config = sim.state.config
    http = HttpConfig.get_default_config()
    http.timeout = (5, 30)
    return (
        WorkspaceAppClient.new_builder()
        .with_credentials(BasicCredentials(config.ak, config.sk, config.project_id))
        .with_endpoints([sim.url])
        .with_http_config(http)
        .build()
    )


def run(sim: env.Sim, server_ids: list[str], image_id: str, job_seconds: float) -> dict:
    """Returns calls (by API), wall time, polling rounds and the final job states."""
    sdk = sdk_client(sim)
    calls = {"ListServers": 0, "BatchChangeServerImage": 0, "ShowJobDetail": 0}
    start = time.perf_counter()

    listed, offset = [], 0
    while True:
        page = sdk.list_servers(ListServersRequest(offset=offset, limit=100))
        calls["ListServers"] += 1
        listed += page.items or []
        offset += len(page.items or [])
        if not page.items or offset >= page.count:
            break
    wanted = set(server_ids)
    chosen = [s.id for s in listed if s.id in wanted]

    jobs: dict[str, str] = {}
    for i in range(0, len(chosen), 50):
        body = BatchChangeServerImageReq(
            server_ids=chosen[i : i + 50],
            image_id=image_id,
            image_type="private",
            os_type="Windows",
        )
        answer = sdk.batch_change_server_image(BatchChangeServerImageRequest(body=body))
        calls["BatchChangeServerImage"] += 1
        for item in answer.items or []:
            if item.job_id:
                jobs[item.job_id] = ""

    rounds = 0
    pending = list(jobs)
    while pending and rounds < 20:
        rounds += 1
        still = []
        for job_id in pending:
            status = str(sdk.show_job_detail(ShowJobDetailRequest(job_id=job_id)).status)
            calls["ShowJobDetail"] += 1
            jobs[job_id] = status
            if status not in FINAL:
                still.append(job_id)
        pending = still
        if pending:
            sim.state.advance(job_seconds)
    wall = time.perf_counter() - start
    states: dict[str, int] = {}
    for status in jobs.values():
        states[status] = states.get(status, 0) + 1
    return {"calls": calls, "wall": wall, "rounds": rounds, "states": states, "sent": len(chosen)}
