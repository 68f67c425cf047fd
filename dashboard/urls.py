from django.urls import path

from dashboard.views import audit, health, pages

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("", pages.overview, name="overview"),
    path("groups/", pages.groups, name="groups"),
    path("servers/", pages.servers, name="servers"),
    path("images/", pages.images, name="images"),
    path("rollouts/", pages.rollouts, name="rollouts"),
    path("audit/", audit.audit_list, name="audit"),
    path("audit/export.csv", audit.audit_export, name="audit-export"),
]
