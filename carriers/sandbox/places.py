"""Places the sandbox's simulated parcels travel through: city, region, postcode, country, zone.

Pure data. Each carrier has its own hubs (UPS Worldport in Louisville, FedEx in Memphis, DHL
Leipzig and Cincinnati/Hebron), so scan locations look like that carrier's network. Zones are
IANA names resolved with zoneinfo, so local times carry the right offset for the date (DST).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

__all__ = ["DE_CITIES", "EU_CITIES", "HUBS", "US_CITIES", "Place", "Route", "route_for", "zone"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Place:
    """One scan location. ``code`` is a short facility id (UPS slic / FedEx locationId style)."""

    city: str
    state: str
    postal: str
    country: str
    country_name: str
    zone: str
    code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    origin: Place
    hub: Place
    destination: Place


def _us(city: str, state: str, postal: str, tz: str, code: str) -> Place:
    return Place(city=city, state=state, postal=postal, country="US",
                 country_name="United States", zone=tz, code=code)


US_CITIES: tuple[Place, ...] = (
    _us("ATLANTA", "GA", "30301", "America/New_York", "ATLA"),
    _us("NEW YORK", "NY", "10001", "America/New_York", "NYCA"),
    _us("CHICAGO", "IL", "60601", "America/Chicago", "CHIA"),
    _us("DALLAS", "TX", "75201", "America/Chicago", "DALA"),
    _us("DENVER", "CO", "80202", "America/Denver", "DENA"),
    _us("PHOENIX", "AZ", "85004", "America/Phoenix", "PHXA"),
    _us("SEATTLE", "WA", "98101", "America/Los_Angeles", "SEAA"),
    _us("LOS ANGELES", "CA", "90012", "America/Los_Angeles", "LAXA"),
    _us("BOSTON", "MA", "02108", "America/New_York", "BOSA"),
    _us("MIAMI", "FL", "33101", "America/New_York", "MIAA"),
)

EU_CITIES: tuple[Place, ...] = (
    Place(city="Paris", state="", postal="75001", country="FR", country_name="France",
          zone="Europe/Paris", code="CDG"),
    Place(city="Amsterdam", state="", postal="1012", country="NL", country_name="Netherlands",
          zone="Europe/Amsterdam", code="AMS"),
    Place(city="London", state="", postal="EC1A 1BB", country="GB",
          country_name="United Kingdom", zone="Europe/London", code="LHR"),
    Place(city="Bonn", state="", postal="53113", country="DE", country_name="Germany",
          zone="Europe/Berlin", code="BON"),
)

DE_CITIES: tuple[Place, ...] = (
    Place(city="Bonn", state="", postal="53113", country="DE", country_name="Germany",
          zone="Europe/Berlin", code="BON"),
    Place(city="Berlin", state="", postal="10115", country="DE", country_name="Germany",
          zone="Europe/Berlin", code="BER"),
    Place(city="Hamburg", state="", postal="20095", country="DE", country_name="Germany",
          zone="Europe/Berlin", code="HAM"),
    Place(city="Muenchen", state="", postal="80331", country="DE", country_name="Germany",
          zone="Europe/Berlin", code="MUC"),
)

HUBS: dict[str, Place] = {
    "ups": _us("LOUISVILLE", "KY", "40209", "America/New_York", "4009"),
    "fedex": _us("MEMPHIS", "TN", "38118", "America/Chicago", "MEMA"),
    "dhl_eu": Place(city="Leipzig", state="", postal="04435", country="DE",
                    country_name="Germany", zone="Europe/Berlin", code="LEJ"),
    "dhl_us": _us("HEBRON", "KY", "41048", "America/New_York", "CVG"),
}


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _pair(rng: random.Random, cities: tuple[Place, ...]) -> tuple[Place, Place]:
    origin, destination = rng.sample(cities, 2)
    return origin, destination


def route_for(carrier: str, dhl_service: str, rng: random.Random) -> Route:
    """A plausible route for one parcel: origin, the carrier's hub, destination."""
    if carrier == "dhl":
        if dhl_service == "express":
            origin = rng.choice(EU_CITIES)
            return Route(origin=origin, hub=HUBS["dhl_eu"], destination=rng.choice(US_CITIES))
        if dhl_service == "parcel-de":
            origin, destination = _pair(rng, DE_CITIES)
            return Route(origin=origin, hub=HUBS["dhl_eu"], destination=destination)
        origin, destination = _pair(rng, US_CITIES)
        return Route(origin=origin, hub=HUBS["dhl_us"], destination=destination)
    origin, destination = _pair(rng, US_CITIES)
    if carrier in HUBS:
        return Route(origin=origin, hub=HUBS[carrier], destination=destination)
    # USPS: a regional distribution centre in a third city.
    hub = rng.choice([c for c in US_CITIES if c not in (origin, destination)])
    return Route(origin=origin, hub=hub, destination=destination)
