"""Client keys live in the stage's API Gateway usage plan, which caps each key's rate."""
from __future__ import annotations

import boto3

from chalicelib.deps import platform
from chalicelib.domain.model import CLIENT
from chalicelib.handlers.accounts import create_account
from infra.rate_limits import LIMITS, attach_stage, ensure_usage_plan
from tests.functional.marketplace import Api


def _plan_keys(apigateway) -> dict[str, str]:
    """name (account id) -> key value, of the keys in the stage's plan."""
    plan_id = platform().client_keys._plan
    ids = {k["id"] for k in apigateway.get_usage_plan_keys(usagePlanId=plan_id)["items"]}
    keys = apigateway.get_api_keys(includeValues=True)["items"]
    return {k["name"]: k["value"] for k in keys if k["id"] in ids}


def test_client_keys_join_the_usage_plan_and_leave_it_when_rotated_or_revoked(stack):
    apigateway = boto3.client("apigateway")
    _, operator_key = create_account(platform(), "operator", "ops")
    api = Api(stack)
    # WHEN an operator opens a client account
    status, opened = api.call("POST", "/operator/accounts", {"role": "client", "name": "Acme"},
                              {"X-Api-Key": operator_key})
    assert status == 201 and opened["api_key"].startswith("ck_")
    # THEN its key is in the plan, and works
    assert _plan_keys(apigateway)[opened["account_id"]] == opened["api_key"]
    assert api.as_client("GET", "/jobs", key=opened["api_key"])[0] == 200
    # WHEN it rotates its key THEN only the new one is in the plan
    status, rotated = api.as_client("POST", "/keys/rotate", key=opened["api_key"])
    assert status == 200
    assert _plan_keys(apigateway)[opened["account_id"]] == rotated["api_key"]
    assert list(_plan_keys(apigateway)).count(opened["account_id"]) == 1
    # WHEN an operator revokes the account THEN its key leaves the plan
    status, _ = api.call("POST", f"/operator/accounts/{opened['account_id']}/revoke", None,
                         {"X-Api-Key": operator_key})
    assert status == 200
    assert opened["account_id"] not in _plan_keys(apigateway)
    # AND workers and operators are not in it (their routes do not use API Gateway keys)
    assert not any(name.startswith(("wrk_", "opr_")) for name in _plan_keys(apigateway))


def test_opening_an_account_checks_its_body(stack):
    _, operator_key = create_account(platform(), "operator", "ops")
    _, client_key = create_account(platform(), CLIENT, "not an operator")
    api = Api(stack)
    for body, field in [({"role": "worker", "name": "x"}, "role"), ({"role": "client"}, "name"),
                        ({"role": "client", "name": "x", "extra": 1}, "extra")]:
        status, error = api.call("POST", "/operator/accounts", body, {"X-Api-Key": operator_key})
        assert status == 400 and error["field"].endswith(field), error
    status, error = api.call("POST", "/operator/accounts", {"role": "client", "name": "x"},
                             {"X-Api-Key": client_key})
    assert status == 403 and error["error"] == "wrong_role"


def test_the_plan_is_made_once_updated_in_place_and_attached_once(stack):
    apigateway = boto3.client("apigateway")
    first = ensure_usage_plan(apigateway, "crowd", "dev")
    assert ensure_usage_plan(apigateway, "crowd", "dev") == first == platform().client_keys._plan
    plan = apigateway.get_usage_plan(usagePlanId=first)
    assert plan["throttle"] == {"rateLimit": LIMITS["dev"]["rate"],
                                "burstLimit": LIMITS["dev"]["burst"]}
    assert plan["quota"]["limit"] == LIMITS["dev"]["per_day"] and plan["quota"]["period"] == "DAY"
    ensure_usage_plan(apigateway, "crowd", "dev", {"rate": 5, "burst": 10, "per_day": 1000})
    plan = apigateway.get_usage_plan(usagePlanId=first)
    assert plan["throttle"] == {"rateLimit": 5.0, "burstLimit": 10}
    assert plan["quota"]["limit"] == 1000
    api_id = apigateway.create_rest_api(name="crowd")["id"]
    assert attach_stage(apigateway, first, api_id, "api")
    assert not attach_stage(apigateway, first, api_id, "api")
    assert apigateway.get_usage_plan(usagePlanId=first)["apiStages"] == [
        {"apiId": api_id, "stage": "api"}]


def test_client_routes_need_an_api_gateway_key_and_no_other_route_does():
    import app
    from chalice.deploy.swagger import SwaggerGenerator

    from chalicelib.api.openapi import role_of

    swagger = SwaggerGenerator("us-east-1", {
        "api_handler_arn": "arn:aws:lambda:us-east-1:000000000000:function:crowd-dev",
    }).generate_swagger(app.app)
    keyed = {(method.upper(), path) for path, methods in swagger["paths"].items()
             for method, operation in methods.items()
             if isinstance(operation, dict) and {"api_key": []} in operation.get("security", [])}
    clients = {(m, p) for p, entries in app.app.routes.items() for m in entries
               if role_of(m, p) == "client"}
    assert keyed == clients - {("POST", "/keys/rotate")}
    assert ("POST", "/jobs") in keyed and ("GET", "/tasks/next") not in keyed
