"""Where places are: the shipped table of Chinese cities with coordinates (data/cities.csv:
every prefecture-level city of mainland China and the four municipalities, each province's
capital listed first), looked up by an address's province and city, and great-circle
distances between them."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CITIES = Path(__file__).resolve().parent.parent / "data" / "cities.csv"
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Place:
    province: str
    city: str
    latitude: float
    longitude: float


def _key(name: str) -> str:
    # Addresses write 杭州 or 杭州市, 浙江 or 浙江省: compare without the administrative suffix.
    name = name.strip()
    # 地区 and 盟 name prefecture-level areas (喀什地区, 锡林郭勒盟), written with or without.
    for suffix in (
        "特别行政区",
        "维吾尔自治区",
        "壮族自治区",
        "回族自治区",
        "自治区",
        "地区",
        "盟",
        "省",
        "市",
    ):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


@cache
def _cities() -> dict[str, Place]:
    with CITIES.open(encoding="utf-8", newline="") as handle:
        return {
            _key(row["city"]): Place(
                row["province"], row["city"], float(row["latitude"]), float(row["longitude"])
            )
            for row in csv.DictReader(handle)
        }


def locate(province: str, city: str) -> Place | None:
    """The place of an address's city (its province when the city is unknown: the province's
    first listed city, its capital), or None."""
    found = _cities().get(_key(city))
    if found is not None:
        return found
    wanted = _key(province)
    return next((p for p in _cities().values() if _key(p.province) == wanted), None)


def locate_address(address: Mapping[str, Any] | None) -> Place | None:
    """The place of a shipping address (its ``province`` and ``city`` keys), or None."""
    if not address:
        return None
    province, city = address.get("province"), address.get("city")
    if not isinstance(province, str) or not isinstance(city, str):
        return None
    return locate(province, city)


def same_region(a: str, b: str) -> bool:
    """Two province (or city) names name the same place, with or without their suffix."""
    return _key(a) == _key(b)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
