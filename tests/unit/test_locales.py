"""A worker's country and subdivision as registration and the profile change take them."""
from __future__ import annotations

import pytest

from chalicelib.domain import locales
from chalicelib.errors import InvalidRequest


def test_the_assigned_countries_are_the_249_of_iso_3166_1():
    assert len(locales.COUNTRIES) == 249
    assert {"US", "CA", "GB", "AU", "NZ", "DE", "AX", "SS", "BQ"} <= locales.COUNTRIES
    # user-assigned and reserved codes are not countries
    assert not {"XK", "EU", "UK", "ZZ", "AA"} & locales.COUNTRIES
    assert all(len(code) == 2 and code.isupper() and code.isalpha() for code in locales.COUNTRIES)


@pytest.mark.parametrize("given, stored", [("US", "US"), ("de", "DE"), (" gb ", "GB"),
                                           (None, None)])
def test_a_country_is_an_assigned_code_upper_cased(given, stored):
    assert locales.country(given) == stored


@pytest.mark.parametrize("given", ["", "U", "USA", "XK", "UK", "U1", 840, ["US"], True])
def test_anything_else_is_refused_naming_the_field(given):
    with pytest.raises(InvalidRequest) as raised:
        locales.country(given)
    assert raised.value.field == "country" and raised.value.code == "invalid_country"


@pytest.mark.parametrize("given, stored", [("CA", "CA"), ("ny", "NY"), ("08", "08"),
                                           ("AUK", "AUK"), ("9", "9"), (None, None)])
def test_a_subdivision_is_one_to_three_letters_or_digits(given, stored):
    assert locales.subdivision(given) == stored


@pytest.mark.parametrize("given", ["", "US-CA", "ABCD", "C A", "é", 5])
def test_a_subdivision_of_another_shape_is_refused(given):
    with pytest.raises(InvalidRequest) as raised:
        locales.subdivision(given)
    assert raised.value.field == "subdivision" and raised.value.code == "invalid_subdivision"


def test_registration_takes_both_optional_but_no_subdivision_without_a_country():
    assert locales.new_locale({}) == (None, None)
    assert locales.new_locale({"country": "us", "subdivision": "ca"}) == ("US", "CA")
    with pytest.raises(InvalidRequest) as raised:
        locales.new_locale({"subdivision": "CA"})
    assert raised.value.field == "subdivision"


@pytest.mark.parametrize("body, current, after", [
    ({"country": "CA"}, (None, None), ("CA", None)),
    ({"subdivision": "NY"}, ("US", "CA"), ("US", "NY")),
    ({"subdivision": None}, ("US", "CA"), ("US", None)),
    # the same country keeps its subdivision, another country drops it
    ({"country": "US"}, ("US", "CA"), ("US", "CA")),
    ({"country": "GB"}, ("US", "CA"), ("GB", None)),
    ({"country": "GB", "subdivision": "SCT"}, ("US", "CA"), ("GB", "SCT")),
    ({"country": None}, ("US", "CA"), (None, None)),
    ({}, ("US", "CA"), ("US", "CA")),
])
def test_a_change_keeps_absent_fields_and_null_clears(body, current, after):
    assert locales.changed_locale(body, current) == after


def test_a_change_cannot_leave_a_subdivision_without_a_country():
    with pytest.raises(InvalidRequest):
        locales.changed_locale({"country": None, "subdivision": "CA"}, ("US", "CA"))
    with pytest.raises(InvalidRequest):
        locales.changed_locale({"subdivision": "CA"}, (None, None))


def test_the_locale_value_is_what_worker_locale_compares():
    assert locales.locale_value(None, None) is None
    assert locales.locale_value("US", None) == {"Country": "US"}
    assert locales.locale_value("US", "CA") == {"Country": "US", "Subdivision": "CA"}
