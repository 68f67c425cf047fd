"""Image handlers: IMS (ListImages with marker paging, GlanceShowImage) and Workspace
(ListImages with offset paging, ListMarketImages by id)."""

from collections.abc import Callable
from typing import Any

from dashboard.simulator import codes, render
from dashboard.simulator.fleet import MARKETPLACE, PRIVATE, PUBLIC, Image
from dashboard.simulator.http import (
    ApiError,
    Request,
    Response,
    ims_bad,
    int_param,
    page,
    str_param,
    wks_bad,
)

IMS_SORT_KEYS = ("created_at", "name", "container_format", "disk_format", "status", "id", "size")
IMS_MAX_LIMIT = 1000


def _ims_filters(req: Request) -> list[Callable[[Image], bool]]:
    def param(name: str, choices: tuple[str, ...] = ()) -> str | None:
        return str_param(req, name, 255, choices, bad=ims_bad)

    checks: list[Callable[[Image], bool]] = []
    image_type = param("__imagetype", ("gold", "private", "shared", "market"))
    if image_type:
        checks.append(lambda i: render.IMS_TYPE[i.kind] == image_type)
    os_type = param("__os_type", ("Linux", "Windows", "Other"))
    if os_type:
        checks.append(lambda i: i.os_type == os_type)
    platform = param("__platform")
    if platform:
        checks.append(lambda i: i.platform == platform)
    if param("__isregistered", ("true", "false")) == "false":
        checks.append(lambda i: False)  # every simulated image is registered
    arch = param("architecture", ("x86", "arm"))
    if arch:
        checks.append(lambda i: i.architecture == arch)
    for name, attribute in (("id", "id"), ("name", "name"), ("status", "status")):
        wanted = param(name)
        if wanted:
            checks.append(lambda i, a=attribute, w=wanted: getattr(i, a) == w)
    visibility = param("visibility", ("public", "private", "shared"))
    if visibility:
        checks.append(lambda i: render.ims_image_visibility(i) == visibility)
    return checks


def list_ims_images(req: Request) -> Response:
    """IMS ListImages: marker paging (no total), sorted by sort_key/sort_dir."""
    limit = int_param(req, "limit", 500, 1, IMS_MAX_LIMIT, bad=ims_bad)
    sort_key = str_param(req, "sort_key", 32, IMS_SORT_KEYS, bad=ims_bad) or "created_at"
    sort_dir = str_param(req, "sort_dir", 4, ("asc", "desc"), bad=ims_bad) or "desc"
    marker = req.param("marker")
    checks = _ims_filters(req)
    state = req.state
    with state.lock:
        found = [i for i in state.images.values() if all(check(i) for check in checks)]
        found.sort(key=lambda i: (_sort_value(i, sort_key), i.id), reverse=sort_dir == "desc")
        start = 0
        if marker:
            ids = [i.id for i in found]
            if marker not in ids:
                raise ims_bad("Invalid parameter marker: no such image in this listing.")
            start = ids.index(marker) + 1
        images = [render.ims_image(state, i) for i in found[start : start + limit]]
    return Response(200, {"images": images})


def _sort_value(image: Image, key: str) -> Any:
    if key == "size":
        return image.size
    if key in ("container_format", "disk_format"):
        return ""
    return getattr(image, key)


def glance_show_image(req: Request) -> Response:
    """GlanceShowImage."""
    state = req.state
    with state.lock:
        image = state.image(req.args["image_id"])
        if image is None:
            raise ApiError(404, codes.ims(codes.IMS_NOT_FOUND, "Image not found."))
        return Response(200, render.ims_image(state, image))


def list_workspace_images(req: Request) -> Response:
    """Workspace ListImages: public (gold) and private images, offset paging, total_count."""
    limit = int_param(req, "limit", 100, 0, 100)
    offset = int_param(req, "offset", 0, 0, 5000)
    image_type = str_param(req, "image_type", 16, ("gold", "private"), empty_is_absent=True)
    os_type = str_param(req, "os_type", 16, ("Linux", "Windows", "Other"))
    arch = str_param(req, "architecture", 8, ("x86", "arm"))
    platform = str_param(req, "platform", 64)
    image_id = str_param(req, "image_id", 128)
    sort_field = str_param(req, "sort_field", 16, ("name", "created_at")) or "name"
    sort_type = str_param(req, "sort_type", 4, ("asc", "desc")) or "asc"
    state = req.state
    with state.lock:
        found = [
            i
            for i in state.images.values()
            if i.kind in (PUBLIC, PRIVATE)
            and (not image_type or render.WORKSPACE_TYPE[i.kind] == image_type)
            and (not os_type or i.os_type == os_type)
            and (not arch or i.architecture == arch)
            and (not platform or i.platform == platform)
            and (not image_id or i.id == image_id)
        ]
        found.sort(key=lambda i: (getattr(i, sort_field), i.id), reverse=sort_type == "desc")
        images = [render.workspace_image(i) for i in page(found, offset, limit)]
    return Response(200, {"images": images, "total_count": len(found)})


def list_market_images(req: Request) -> Response:
    """Workspace ListMarketImages: the marketplace images among 1 to 100 `image_ids`."""
    wanted = [v for raw in req.params("image_ids") for v in raw.split(",") if v]
    if not 1 <= len(wanted) <= 100:
        raise wks_bad("Invalid parameter image_ids: 1 to 100 image ids.")
    state = req.state
    with state.lock:
        found = [state.images.get(i) for i in wanted]
        images = [render.market_image(i) for i in found if i and i.kind == MARKETPLACE]
    return Response(200, {"images": images})
