"""The stage's API Gateway usage plan: every client key's request rate and daily quota.

`make deploy` creates or updates the plan before `chalice deploy` (its id goes into the
stage's environment as USAGE_PLAN_ID, so the app registers each client key in it) and
attaches the REST API's stage to it after (the API exists only then). Both steps are
idempotent. Chalice marks the client routes `api_key_required`, so API Gateway refuses a
client call whose key is not in the plan (403) and throttles each key (429).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Per key: steady requests per second, burst, requests per day.
LIMITS: dict[str, dict[str, float]] = {
    "dev": {"rate": 20, "burst": 40, "per_day": 100_000},
    "prod": {"rate": 50, "burst": 100, "per_day": 1_000_000},
}
DEFAULT_LIMITS = LIMITS["dev"]


def plan_name(app_name: str, stage: str) -> str:
    """The usage plan's name, e.g. `crowd-prod-clients`."""
    return f"{app_name}-{stage}-clients"


def _find(apigateway: Any, name: str) -> dict[str, Any] | None:
    for page in apigateway.get_paginator("get_usage_plans").paginate():
        for plan in page.get("items", []):
            if plan.get("name") == name:
                return plan
    return None


def ensure_usage_plan(apigateway: Any, app_name: str, stage: str,
                      limits: Mapping[str, float] | None = None) -> str:
    """Create the stage's plan, or bring its throttle and quota to limits; its id."""
    limits = limits or LIMITS.get(stage, DEFAULT_LIMITS)
    throttle = {"rateLimit": float(limits["rate"]), "burstLimit": int(limits["burst"])}
    quota = {"limit": int(limits["per_day"]), "period": "DAY"}
    name = plan_name(app_name, stage)
    plan = _find(apigateway, name)
    if plan is None:
        return apigateway.create_usage_plan(
            name=name, description="per client key: rate, burst and daily quota",
            throttle=throttle, quota=quota)["id"]
    changes = []
    if plan.get("throttle") != throttle:
        changes += [{"op": "replace", "path": "/throttle/rateLimit",
                     "value": f"{throttle['rateLimit']:g}"},
                    {"op": "replace", "path": "/throttle/burstLimit",
                     "value": str(throttle["burstLimit"])}]
    if plan.get("quota", {}).get("limit") != quota["limit"]:
        changes.append({"op": "replace", "path": "/quota/limit", "value": str(quota["limit"])})
    if changes:
        apigateway.update_usage_plan(usagePlanId=plan["id"], patchOperations=changes)
    return plan["id"]


def attach_stage(apigateway: Any, plan_id: str, rest_api_id: str, api_stage: str) -> bool:
    """Put the API's stage under the plan; False when it already was."""
    plan = apigateway.get_usage_plan(usagePlanId=plan_id)
    if any(s.get("apiId") == rest_api_id and s.get("stage") == api_stage
           for s in plan.get("apiStages", [])):
        return False
    apigateway.update_usage_plan(usagePlanId=plan_id, patchOperations=[
        {"op": "add", "path": "/apiStages", "value": f"{rest_api_id}:{api_stage}"}])
    return True


def delete_usage_plan(apigateway: Any, app_name: str, stage: str) -> bool:
    """Delete the stage's plan with its stages and keys detached; False if there was none."""
    plan = _find(apigateway, plan_name(app_name, stage))
    if plan is None:
        return False
    if plan.get("apiStages"):
        apigateway.update_usage_plan(usagePlanId=plan["id"], patchOperations=[
            {"op": "remove", "path": "/apiStages", "value": f"{s['apiId']}:{s['stage']}"}
            for s in plan["apiStages"]])
    for key in apigateway.get_usage_plan_keys(usagePlanId=plan["id"]).get("items", []):
        apigateway.delete_api_key(apiKey=key["id"])
    apigateway.delete_usage_plan(usagePlanId=plan["id"])
    return True
