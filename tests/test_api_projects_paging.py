"""The images list pages over rows that share an id across projects (a region's public image)
without losing or repeating one at a page boundary."""

import pytest
from django.utils import timezone

from dashboard import projects
from dashboard.cloud.projects import ProjectConfig
from dashboard.models import Image


@pytest.mark.django_db
def test_paging_images_keeps_each_projects_row_of_a_shared_image(viewer_token, settings):
    settings.CLOUD_PROJECTS = (
        ProjectConfig(name="alpha", region="cn-north-4", ak_env="A", sk_env="B"),
        ProjectConfig(name="beta", region="cn-north-4", ak_env="A", sk_env="B"),
    )
    alpha, beta = projects.rows()
    now = timezone.now()
    for n in range(5):
        for project in (alpha, beta):  # the same public image in both projects
            Image.objects.create(project=project, id=f"public-{n}", name="win", synced_at=now)

    seen, cursor = [], None
    for _ in range(20):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = viewer_token.get("/api/v1/images", params).json()
        seen += [(item["project"], item["id"]) for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break

    assert sorted(seen) == sorted((p, f"public-{n}") for p in ("alpha", "beta") for n in range(5))
    assert len(seen) == len(set(seen)) == 10
