from django.urls import path

from dashboard.views import health, pages

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("", pages.overview, name="overview"),
    path("groups/", pages.groups, name="groups"),
    path("servers/", pages.servers, name="servers"),
    path("images/", pages.images, name="images"),
    path("rollouts/", pages.rollouts, name="rollouts"),
    path("audit/", pages.audit, name="audit"),
]
