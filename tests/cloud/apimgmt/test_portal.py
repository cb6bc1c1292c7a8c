"""The developer portal over HTTP against a real cloud: sign-in, pages, forms with CSRF, no outside resources."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

from cloud.server import CloudServer
from tests.cloud.apimgmt.conftest import app_token, plain
from tests.cloud.identity.conftest import sign_in


class _Page(HTMLParser):
    """Collects what a page links to, its form controls and their labels."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.controls: list[dict[str, str | None]] = []
        self.labels: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href", "action", "formaction"):
            if found.get(name) is not None:
                self.links.append(str(found[name]))
        if tag == "label" and found.get("for"):
            self.labels.add(str(found["for"]))
        if tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            self.controls.append(found)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def assert_self_contained(html: str) -> None:
    """No link or resource outside the server, and every visible control labelled."""
    page = parse(html)
    outside = [u for u in page.links if re.match(r"^(https?:)?//", u)]
    assert outside == [], outside
    for control in page.controls:
        assert control.get("id") in page.labels or control.get("aria-label"), control


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field"
    return found.group(1)


async def test_signed_out_the_portal_offers_sign_in_and_the_reference(cloud: CloudServer) -> None:
    async with plain(cloud) as http:
        r = await http.get("/developers")
        assert r.status_code == 303 and r.headers["location"] == "/developers/signin"
        page = await http.get("/developers/signin")
        assert page.status_code == 200 and 'action="/auth/signin"' in page.text
        assert_self_contained(page.text)
        script = await http.get("/developers/static/signin.js")
        css = await http.get("/developers/static/portal.css")
        assert script.status_code == 200 and "fetch(" in script.text
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert (await http.get("/developers/static/../../etc/passwd")).status_code == 404
        ref = await http.get("/developers/reference")
    assert ref.status_code == 200
    assert_self_contained(ref.text)
    assert "default-src 'self'" in ref.headers["content-security-policy"]
    # drawn from the OpenAPI document: the operations, their parameters, schemas and problem types
    for text in ("/api/v1/applications/{app_id}/rotate-secret", "/api/v1/readings", "ApplicationBody",
                 "too-many-requests", 'id="tag-applications"', "<caption>Parameters</caption>"):  # fmt: skip
        assert text in ref.text, text


async def test_register_rotate_change_plan_usage_and_delete_in_the_portal(cloud: CloudServer) -> None:
    async with httpx.AsyncClient(base_url=cloud.info.base_url, timeout=5) as http:
        await sign_in(cloud, http, "dana", role="operator")
        home = await http.get("/developers")
        assert home.status_code == 200 and "dana" in home.text and "standard" in home.text
        assert_self_contained(home.text)
        apps = await http.get("/developers/applications")
        assert apps.status_code == 200
        assert_self_contained(apps.text)
        csrf = csrf_of(apps.text)
        # a form without the session's CSRF token is refused
        r = await http.post("/developers/applications", data={"name": "x", "scopes": "readings:read", "csrf": "no"})
        assert r.status_code == 403 and "CSRF" in r.text
        # a bad input is named on the page
        r = await http.post("/developers/applications", data={"name": "x", "scopes": "root", "csrf": csrf})
        assert r.status_code == 400 and "scopes" in r.text and 'role="alert"' in r.text
        r = await http.post(
            "/developers/applications",
            data={"name": "Greenhouse <dashboard>", "scopes": ["readings:read", "gateways:read"], "plan": "free",
                  "csrf": csrf},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        assert "Greenhouse &lt;dashboard&gt;" in r.text and "<dashboard>" not in r.text
        client_id = re.search(r"<dt>Client id</dt><dd><code>([^<]+)</code>", r.text)
        secret = re.search(r'<code class="secret-value">([^<]+)</code>', r.text)
        assert client_id and secret
        cid, first_secret = client_id.group(1), secret.group(1)
        assert (await app_token(cloud, cid, first_secret)).status_code == 200
        # the secret is shown once: the list does not show it again
        again = await http.get("/developers/applications")
        assert first_secret not in again.text and cid in again.text
        # change the plan
        r = await http.post(f"/developers/applications/{cid}/plan", data={"plan": "standard", "csrf": csrf})
        assert r.status_code == 303
        assert cloud.managed_api is not None and cloud.managed_api.application_plan(cid) == "standard"
        r = await http.post(f"/developers/applications/{cid}/plan", data={"plan": "unlimited", "csrf": csrf})
        assert r.status_code == 403 and "use_plan" in r.text
        # rotate: a new secret once, the old one refused
        r = await http.post(f"/developers/applications/{cid}/rotate", data={"csrf": csrf})
        new_secret = re.search(r'<code class="secret-value">([^<]+)</code>', r.text)
        assert r.status_code == 200 and new_secret and new_secret.group(1) != first_secret
        assert (await app_token(cloud, cid, first_secret)).status_code == 401
        # some calls, then the usage page with its chart
        token = (await app_token(cloud, cid, new_secret.group(1))).json()["access_token"]
        async with plain(cloud, token) as app_http:
            for _ in range(3):
                assert (await app_http.get("/api/v1/readings")).status_code == 200
            assert (await app_http.get("/api/v1/events")).status_code == 403
        usage = await http.get(f"/developers/applications/{cid}/usage")
        assert usage.status_code == 200
        assert_self_contained(usage.text)
        assert '<svg class="chart"' in usage.text and 'role="img"' in usage.text
        assert "4 calls and 1 errors" in usage.text
        row = re.search(r"<code>GET /api/v1/readings</code></th><td>(\d+)</td><td>(\d+)</td>", usage.text)
        assert row and row.groups() == ("3", "0")
        # delete
        r = await http.post(f"/developers/applications/{cid}/delete", data={"csrf": csrf})
        assert r.status_code == 303
        assert cid not in (await http.get("/developers/applications")).text
        assert (await app_token(cloud, cid, new_secret.group(1))).status_code == 401
        # sign out: the portal asks to sign in again
        r = await http.post("/developers/signout", data={"csrf": csrf})
        assert r.status_code == 303
        http.cookies.clear()
        assert (await http.get("/developers/applications")).status_code == 303


async def test_another_developers_application_is_not_reachable_from_the_portal(cloud: CloudServer) -> None:
    async with httpx.AsyncClient(base_url=cloud.info.base_url, timeout=5) as owner:
        await sign_in(cloud, owner, "olga", role="operator")
        csrf = csrf_of((await owner.get("/developers/applications")).text)
        r = await owner.post("/developers/applications", data={"name": "mine", "scopes": "readings:read", "csrf": csrf})
        cid = re.search(r"<dt>Client id</dt><dd><code>([^<]+)</code>", r.text)
        assert cid
    async with httpx.AsyncClient(base_url=cloud.info.base_url, timeout=5) as other:
        await sign_in(cloud, other, "ivan", role="operator")
        csrf = csrf_of((await other.get("/developers/applications")).text)
        r = await other.post(f"/developers/applications/{cid.group(1)}/delete", data={"csrf": csrf})
        assert r.status_code == 404
        assert (await other.get(f"/developers/applications/{cid.group(1)}/usage")).status_code == 404
