"""Distances on the WGS-84 ellipsoid's mean sphere: how far a GPS fix is from a site."""

from __future__ import annotations

import math
from decimal import Decimal

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius; the error against the ellipsoid is < 0.5 %


def distance_m(lat1: Decimal | float, lon1: Decimal | float, lat2: Decimal | float, lon2: Decimal | float) -> float:
    """Great-circle distance in metres (haversine, stable for the few metres that matter here)."""
    phi1, phi2 = math.radians(float(lat1)), math.radians(float(lat2))
    d_phi = phi2 - phi1
    d_lambda = math.radians(float(lon2) - float(lon1))
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def valid_position(latitude: Decimal, longitude: Decimal) -> bool:
    return -90 <= latitude <= 90 and -180 <= longitude <= 180
