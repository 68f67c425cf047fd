"""The projects the dashboard serves, as database rows everything else belongs to.

`dashboard/cloud/projects.py` says what is configured (the file, or the single-project
variables); this module keeps one `Project` row per configured project, created on first use,
and hands out each project's cloud client. A project dropped from the configuration keeps its
row and its history, marked not configured: pages still show what happened there, but nothing
new can be sent to it.
"""

from django.conf import settings
from django.db import IntegrityError, transaction

from dashboard.cloud import limits
from dashboard.cloud import projects as configuration
from dashboard.cloud.client import CloudClient, get_client
from dashboard.cloud.projects import ProjectConfig
from dashboard.models import Project


class NotConfigured(LookupError):
    """The project has a row (history) but no configuration: nothing can be sent to it."""


def configured() -> tuple[ProjectConfig, ...]:
    return configuration.configured()


def rows() -> list[Project]:
    """A row for every configured project, in configuration order (one query when all exist).

    Rows of projects no longer configured are marked so, and left out.
    """
    configs = configured()
    names = [c.name for c in configs]
    found = {p.name: p for p in Project.objects.all()}  # a handful of rows
    for config in configs:
        if config.name not in found or _differs(found[config.name], config):
            found[config.name] = _upsert(config)
    dropped = [p.pk for p in found.values() if p.configured and p.name not in names]
    if dropped:
        Project.objects.filter(pk__in=dropped).update(configured=False)
    return [found[name] for name in names]


def default() -> Project:
    """The first configured project: where single-project callers and old data belong."""
    return row(configuration.default())


def row(config: ProjectConfig) -> Project:
    project = Project.objects.filter(name=config.name).first()
    if project is None or _differs(project, config):
        project = _upsert(config)
    return project


def by_name(name: str | None) -> Project | None:
    """The configured project called `name`, or None (unknown, or no longer configured)."""
    if not name:
        return None
    config = configuration.find(name)
    return row(config) if config else None


def config_of(project: Project) -> ProjectConfig:
    config = configuration.find(project.name)
    if config is None:
        raise NotConfigured(f"project {project.name!r} is no longer configured")
    return config


def client_for(project: Project | None) -> CloudClient:
    """The cloud client of `project` (the default project when None)."""
    return get_client(config_of(project) if project is not None else configuration.default())


def cloud_contact(project: Project) -> limits.Contact | None:
    """What this process last heard from `project`'s cloud (its own circuit breaker)."""
    config = configuration.find(project.name)
    if config is None:
        return None
    return limits.contact(config.guard_key)


DEFAULT_QUEUE = "default"


def queue_for(project: Project | int | None) -> str:
    """The task queue of a project's syncs and rollouts: each configured project of a file has
    its own, served by its own worker thread, so a project whose cloud is slow or refuses the
    key holds up no other. The single-project configuration keeps the default queue."""
    if project is None or not settings.CLOUD_PROJECTS:
        return DEFAULT_QUEUE
    return f"project-{project if isinstance(project, int) else project.pk}"


def queues() -> list[str]:
    """Every queue a worker serves: the default one, then one per configured project."""
    return [DEFAULT_QUEUE, *dict.fromkeys(queue_for(p) for p in rows())]


def several() -> bool:
    """More than one project configured: pages show project columns and the switcher."""
    return len(configured()) > 1


def _differs(project: Project, config: ProjectConfig) -> bool:
    return (
        project.region != config.region
        or project.label != config.label
        or not project.configured
        or (config.project_id and project.cloud_project_id != config.project_id)
    )


def _upsert(config: ProjectConfig) -> Project:
    values = {"region": config.region, "label": config.label, "configured": True}
    if config.project_id:
        values["cloud_project_id"] = config.project_id
    try:
        with transaction.atomic():
            project, _ = Project.objects.update_or_create(name=config.name, defaults=values)
    except IntegrityError:  # created by another request meanwhile
        project = Project.objects.get(name=config.name)
    return project
