"""Which IAM action each simulated API needs, and the names the knobs use for the APIs.

Only `workspace:server:batchChangeImage` (BatchChangeServerImage) is named by the reference;
the other actions follow the same `service:resource:verb` pattern and are the simulator's
choice. A key denied an API (`denied_apis`) is answered 403 naming the action, as IAM's
policy engine words it.
"""

API_ACTIONS = {
    "ListServers": "workspace:server:list",
    "ShowServer": "workspace:server:get",
    "ListServerGroups": "workspace:serverGroup:list",
    "ShowServerGroup": "workspace:serverGroup:get",
    "BatchChangeServerImage": "workspace:server:batchChangeImage",
    "ChangeServerImage": "workspace:server:changeImage",
    "BatchChangeServerMaintainMode": "workspace:server:batchMaint",
    "ShowJobDetail": "workspace:job:get",
    "ShowJob": "workspace:job:get",
    "ListSubJobs": "workspace:job:list",
    "CountSubJobs": "workspace:job:list",
    "ListSessions": "workspace:session:list",
    "LogoffUserSession": "workspace:session:logoff",
    "ListImages": "ims:images:list",
    "GlanceShowImage": "ims:images:get",
    "ListWorkspaceImages": "workspace:images:list",
    "ListMarketImages": "workspace:images:list",
    "KeystoneValidateToken": "iam:tokens:validate",
    "KeystoneListAuthProjects": "iam:projects:listForUser",
    "KeystoneListProjects": "iam:projects:list",
}


def denial_message(api: str) -> str:
    return f"Policy doesn't allow {API_ACTIONS.get(api, 'this action')} to be performed."
