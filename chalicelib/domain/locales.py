"""Where a worker is: an ISO 3166-1 alpha-2 country and, optionally, the ISO 3166-2
subdivision within it (the part after the hyphen: "CA" for US-CA), as MTurk's Worker_Locale
qualification compares them. Checked without I/O; the answer names the field at fault."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chalicelib.errors import InvalidRequest

# The 249 officially assigned ISO 3166-1 alpha-2 codes (user-assigned and reserved codes,
# such as XK or EU, are not countries here).
COUNTRIES = frozenset((
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO "
    "BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ "
    "DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP "
    "GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG "
    "KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML "
    "MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE "
    "PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL "
    "SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM "
    "US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"
).split())
SUBDIVISION = re.compile(r"[A-Z0-9]{1,3}")


def country(value: Any, field: str = "country") -> str | None:
    """An assigned country code, upper-cased; None (no country) for null."""
    if value is None:
        return None
    code = value.strip().upper() if isinstance(value, str) else None
    if code not in COUNTRIES:
        raise InvalidRequest(f"'{field}' must be an ISO 3166-1 alpha-2 country code such "
                             "as US or DE, or null", field=field, code="invalid_country")
    return code


def subdivision(value: Any, field: str = "subdivision") -> str | None:
    """An ISO 3166-2 subdivision suffix (1 to 3 letters or digits), upper-cased; None for null."""
    if value is None:
        return None
    code = value.strip().upper() if isinstance(value, str) else ""
    if not SUBDIVISION.fullmatch(code):
        raise InvalidRequest(f"'{field}' must be the part of an ISO 3166-2 code after the "
                             "hyphen (CA for US-CA), 1 to 3 letters or digits, or null",
                             field=field, code="invalid_subdivision")
    return code


def new_locale(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The country and subdivision a registration gives (both optional)."""
    return _checked(country(body.get("country")), subdivision(body.get("subdivision")))


def changed_locale(body: Mapping[str, Any], current: tuple[str | None, str | None]
                   ) -> tuple[str | None, str | None]:
    """The locale after a change: a field that is absent keeps its value and null clears it,
    except that a new or cleared country drops a subdivision not given with it (it belonged
    to the old country)."""
    old_country, old_subdivision = current
    new_country = country(body["country"]) if "country" in body else old_country
    if "subdivision" in body:
        new_subdivision = subdivision(body["subdivision"])
    else:
        new_subdivision = old_subdivision if new_country == old_country else None
    return _checked(new_country, new_subdivision)


def _checked(country_code: str | None, subdivision_code: str | None
             ) -> tuple[str | None, str | None]:
    if subdivision_code is not None and country_code is None:
        raise InvalidRequest("a subdivision needs a country", field="subdivision",
                             code="invalid_subdivision")
    return country_code, subdivision_code


def locale_value(country_code: str | None, subdivision_code: str | None
                 ) -> dict[str, str] | None:
    """The Worker_Locale value a worker holds (`{"Country", "Subdivision"}`), or None for a
    worker who gave no country (who then holds no locale)."""
    if country_code is None:
        return None
    value = {"Country": country_code}
    if subdivision_code is not None:
        value["Subdivision"] = subdivision_code
    return value
