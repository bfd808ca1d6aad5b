"""A worker's country and subdivision on the deployed stack: given at registration, shown by
GET /workers/me, changed by PATCH /workers/me, kept by a token rotation, and refused with a
4xx naming the field when malformed."""
from __future__ import annotations

import pytest

from tests.functional.marketplace import Api


def _register(api: Api, **locale: object) -> tuple[int, dict]:
    return api.call("POST", "/workers", {"name": "Ana", "skills": ["en"], **locale})


def test_the_country_is_given_at_registration_shown_changed_and_kept_by_a_rotation(stack):
    api = Api(stack)
    status, created = _register(api, country="us", subdivision="ca")
    assert status == 201, created
    assert (created["country"], created["subdivision"]) == ("US", "CA")
    token = created["token"]
    status, me = api.as_worker(token, "GET", "/workers/me")
    assert status == 200 and (me["country"], me["subdivision"]) == ("US", "CA")

    status, changed = api.as_worker(token, "PATCH", "/workers/me", {"country": "GB",
                                                                     "subdivision": "SCT"})
    assert status == 200, changed
    assert (changed["country"], changed["subdivision"]) == ("GB", "SCT")
    assert "token" not in changed
    status, me = api.as_worker(token, "GET", "/workers/me")
    assert (me["country"], me["subdivision"]) == ("GB", "SCT")

    # the rotated token's credential carries the locale, and later changes reach it
    status, rotated = api.as_worker(token, "POST", "/workers/me/token/rotate")
    assert status == 200
    new = rotated["token"]
    assert api.as_worker(new, "GET", "/workers/me")[1]["country"] == "GB"
    assert api.as_worker(new, "PATCH", "/workers/me", {"country": None})[0] == 200
    status, me = api.as_worker(new, "GET", "/workers/me")
    assert (me["country"], me["subdivision"]) == (None, None)


def test_a_worker_registered_without_a_country_has_none(stack):
    api = Api(stack)
    status, created = _register(api)
    assert status == 201 and created["country"] is None and created["subdivision"] is None


@pytest.mark.parametrize("locale, field", [
    ({"country": "USA"}, "country"), ({"country": "XK"}, "country"),
    ({"subdivision": "CA"}, "subdivision"),
    ({"country": "US", "subdivision": "US-CA"}, "subdivision"),
])
def test_a_malformed_locale_is_refused_at_registration(stack, locale, field):
    status, body = _register(Api(stack), **locale)
    assert status == 400 and body["field"] == field, body


@pytest.mark.parametrize("change, field", [
    ({}, "country"), ({"country": 1}, "country"), ({"name": "Bo"}, "name"),
    ({"subdivision": "TOOLONG"}, "subdivision"),
])
def test_a_malformed_change_is_refused_and_changes_nothing(stack, change, field):
    api = Api(stack)
    token = _register(api, country="NZ")[1]["token"]
    status, body = api.as_worker(token, "PATCH", "/workers/me", change)
    assert status == 400 and body["field"] == field and body["error"], body
    assert api.as_worker(token, "GET", "/workers/me")[1]["country"] == "NZ"


def test_a_change_needs_a_worker_token(stack):
    api = Api(stack)
    status, body = api.call("PATCH", "/workers/me", {"country": "US"})
    assert status == 401 and body["error"] == "missing_credentials"
