"""The console's files at /console/ (issue 11 items 1-2): served from the package with the security headers,
ETags, and no way out of the console's own files. Raw HTTP against a live server."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.live import Server
from tione_server.console.serve import CSP


def _get(
    server: Server, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_console_serves_index_with_security_headers(server: Server) -> None:
    resp = _get(server, "/console/")
    assert resp.status == 200
    assert resp.getheader("content-type") == "text/html; charset=utf-8"
    assert resp.getheader("content-security-policy") == CSP
    assert "script-src 'self'" in CSP
    assert "unsafe-inline" not in CSP
    assert resp.getheader("x-frame-options") == "DENY"
    assert resp.getheader("x-content-type-options") == "nosniff"
    assert resp.getheader("cache-control") == "no-cache"
    etag = resp.getheader("etag")
    assert etag
    again = _get(server, "/console/index.html", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.getheader("x-frame-options") == "DENY"


def test_console_serves_modules_and_the_explorer_catalogue(server: Server) -> None:
    resp = _get(server, "/console/js/main.js")
    assert (resp.status, resp.getheader("content-type")) == (200, "text/javascript; charset=utf-8")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/console/actions.json")
    names = [a["Name"] for a in json.loads(conn.getresponse().read())["Actions"]]
    conn.close()
    assert {"DescribeTrainingTasks", "CreateTrainingTask", "DescribeTrainingMetrics"} <= set(names)


def test_console_redirects_bare_prefix(server: Server) -> None:
    resp = _get(server, "/console")
    assert (resp.status, resp.getheader("location")) == (308, "/console/")


@pytest.mark.parametrize(
    "path",
    [
        "/console/../pyproject.toml",
        "/console/%2e%2e/serve.py",
        "/console/js/../../serve.py",
        "/console/serve.py",
        "/console/__init__.py",
        "/console/..%2fserve.py",
        "/console//etc/passwd",
        "/console/web/index.html",
        "/console/nope.js",
    ],
)
def test_console_refuses_paths_outside_its_files(server: Server, path: str) -> None:
    resp = _get(server, path)
    assert resp.status == 404
    assert resp.getheader("x-content-type-options") == "nosniff"


def test_console_refuses_other_methods(server: Server) -> None:
    resp = _get(server, "/console/", method="POST")
    assert (resp.status, resp.getheader("allow")) == (405, "GET, HEAD")


def test_console_api_still_answers_at_root(server: Server) -> None:
    assert server.call("DescribeTrainingTasks", {})["TotalCount"] == 0
