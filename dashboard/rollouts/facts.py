"""Turn inventory rows and cloud records into the facts compat.verdict() judges."""

from dashboard import compat
from dashboard.cloud import records
from dashboard.models import Image, RolloutServer, Server


def image_facts(image: Image | records.Image | None) -> compat.ImageFacts | None:
    if image is None:
        return None
    return compat.ImageFacts(
        id=image.id,
        os_type=image.os_type,
        architecture=image.architecture,
        image_type=image.image_type,
        status=image.status,
        min_disk=image.min_disk,
        paid=image.paid,
        product_code=image.product_code,
    )


def server_facts(
    server: Server | records.Server, *, gone: bool | None = None
) -> compat.ServerFacts:
    return compat.ServerFacts(
        id=server.id,
        image_id=server.image_id,
        os_type=server.os_type,
        architecture=server.architecture,
        system_disk_size=server.system_disk_size,
        frozen=server.frozen,
        gone=getattr(server, "gone", False) if gone is None else gone,
        job_status=server.job_status,
        session_count=server.session_count,
        maintain_status=server.maintain_status,
    )


def servers_in_active_rollouts(server_ids, exclude_rollout: int | None = None) -> set[str]:
    rows = RolloutServer.objects.filter(
        server_id__in=list(server_ids), state__in=RolloutServer.ACTIVE_STATES
    )
    if exclude_rollout is not None:
        rows = rows.exclude(rollout_id=exclude_rollout)
    return set(rows.values_list("server_id", flat=True))


def verdicts(
    servers: list[Server], target: Image | None, images: dict[str, Image], busy: set[str]
) -> dict[str, compat.Verdict]:
    """One verdict per server for moving it to `target`."""
    target_facts = image_facts(target)
    return {
        s.id: compat.verdict(
            server_facts(s),
            target_facts,
            image_facts(images.get(s.image_id)),
            in_other_rollout=s.id in busy,
        )
        for s in servers
    }
