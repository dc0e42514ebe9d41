"""The content security policy lets the site map load tiles from the configured tile server only."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.core.middleware import tile_image_source
from app.main import create_app


@pytest.mark.parametrize(("url", "source"), [
    ("", None),
    ("/tiles/{z}/{x}/{y}.png", None),  # same origin: 'self' covers it
    ("https://tile.openstreetmap.org/{z}/{x}/{y}.png", "https://tile.openstreetmap.org"),
    ("https://{s}.tile.example.org/{z}/{x}/{y}.png", "https://*.tile.example.org"),
    ("http://10.0.0.5:8080/tiles/{z}/{x}/{y}.png", "http://10.0.0.5:8080"),
    ("javascript:alert(1)", None),
    ("https://evil.example.org;script-src *", None),
])
def test_the_tile_origin_becomes_an_image_source(url, source):
    assert tile_image_source(url) == source


def test_the_policy_names_the_tile_server_when_one_is_set(settings):
    settings.map_tile_url = "https://{s}.tile.example.org/{z}/{x}/{y}.png"
    with TestClient(create_app(settings)) as client:
        policy = client.get("/login").headers["content-security-policy"]
    assert "img-src 'self' data: blob: https://*.tile.example.org;" in policy
    assert "script-src 'self';" in policy


def test_without_a_tile_server_images_stay_same_origin(client):
    policy = client.get("/login").headers["content-security-policy"]
    assert "img-src 'self' data: blob:;" in policy
