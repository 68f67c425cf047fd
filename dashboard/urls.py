from django.urls import include, path

from dashboard.api import api as automation_api
from dashboard.api import pages as api_pages
from dashboard.views import audit, cloud, health, inventory, rollouts, session

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("sign-out/", session.sign_out, name="sign-out"),
    path("demo/identity/", session.demo_identity, name="demo-identity"),
    path("language/", session.set_language, name="set-language"),
    # inventory
    path("", inventory.overview, name="overview"),
    path("groups/", inventory.groups, name="groups"),
    path("servers/", inventory.servers, name="servers"),
    path("servers/<str:server_id>/", inventory.server_detail, name="server-detail"),
    path("images/", inventory.images, name="images"),
    path("inventory/sync/", inventory.sync, name="sync"),
    path("inventory/sync/status/", inventory.sync_status, name="sync-status"),
    # rollouts
    path("rollouts/", rollouts.history, name="rollouts"),
    path("rollouts/new/", rollouts.new, name="rollout-new"),
    path("rollouts/new/plan/", rollouts.plan, name="rollout-plan-create"),
    path("rollouts/selection/", rollouts.selection_update, name="rollout-selection"),
    path("rollouts/new/<int:rollout_id>/", rollouts.plan_detail, name="rollout-plan"),
    path("rollouts/new/<int:rollout_id>/confirm/", rollouts.confirm, name="rollout-confirm"),
    path("rollouts/new/<int:rollout_id>/discard/", rollouts.discard, name="rollout-discard"),
    path("rollouts/new/<int:rollout_id>/replan/", rollouts.replan, name="rollout-replan"),
    path("rollouts/<int:rollout_id>/", rollouts.detail, name="rollout-detail"),
    path("rollouts/<int:rollout_id>/poll/", rollouts.poll, name="rollout-poll"),
    path("rollouts/<int:rollout_id>/approve/", rollouts.approve, name="rollout-approve"),
    path("rollouts/<int:rollout_id>/reject/", rollouts.reject, name="rollout-reject"),
    path("rollouts/<int:rollout_id>/cancel/", rollouts.cancel, name="rollout-cancel"),
    path("rollouts/<int:rollout_id>/pause/", rollouts.pause, name="rollout-pause"),
    path("rollouts/<int:rollout_id>/resume/", rollouts.resume, name="rollout-resume"),
    path("rollouts/<int:rollout_id>/revert/", rollouts.revert, name="rollout-revert"),
    path("rollouts/<int:rollout_id>/retry/", rollouts.retry, name="rollout-retry"),
    path(
        "rollouts/<int:rollout_id>/export.<str:fmt>",
        rollouts.export,
        name="rollout-export",
    ),
    # audit
    path("audit/", audit.audit_list, name="audit"),
    path("audit/export.csv", audit.audit_export, name="audit-export"),
    # the connection check (admins)
    path("cloud/", cloud.connection_check, name="cloud-check"),
    # the automation API and its service tokens (admins)
    path("api/v1/", include(automation_api.urlpatterns())),
    path("tokens/", api_pages.token_list, name="tokens"),
    path("tokens/<int:token_id>/revoke/", api_pages.token_revoke, name="token-revoke"),
    path("tokens/revoke-all/", api_pages.token_revoke_all, name="token-revoke-all"),
]
