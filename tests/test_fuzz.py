"""Fuzzing the endpoint: thousands of random and mutated bodies, queries and headers, validly signed where
that lets them reach the decoder, against a live server. Whatever arrives, the reply is HTTP 200 with
`Content-Type: application/json`, the exact envelope, a fresh UUID4 RequestId, never InternalError, and
the server logs no traceback.

Seeded (TIONE_FUZZ_SEED), sized by TIONE_FUZZ_COUNT and bounded by TIONE_FUZZ_SECONDS.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from tests.live import Server
from tests.rawhttp import (
    FORM_TYPE,
    JSON_TYPE,
    V1,
    Creds,
    RawClient,
    RawRequest,
    check_envelope,
    flatten,
    tc3_request,
    v1_request,
)

SEED = int(os.environ.get("TIONE_FUZZ_SEED", "20211111"))
COUNT = int(os.environ.get("TIONE_FUZZ_COUNT", "10000"))
SECONDS = float(os.environ.get("TIONE_FUZZ_SECONDS", "120"))

# Read-only actions only: a random body that happens to be valid must not create or stop anything.
ACTIONS = [
    "DescribeTrainingTasks", "DescribeTrainingTasks", "DescribeTrainingTasks", "DescribeTrainingTask",
    "DescribeTrainingTaskPods", "DescribeLogs", "DescribeBillingSpecs",
]  # fmt: skip
KEYS = [
    "Filters", "TagFilters", "Limit", "Offset", "Order", "OrderField", "TiProjectId", "Id", "InstanceId",
    "Name", "Values", "Fuzzy", "Negative", "TagKey", "TagValues", "Service", "StartTime", "ChargeType",
    "Region", "Action", "Version", "Foo", "", "filters", "Limit ", "Ｌimit", "Id.0",
]  # fmt: skip
STRINGS = [
    "", " ", "a b", "c/d", "a+b", "训练 任务", "%", "_", "\\", "'", '"', "\x00", "\x7f", "\u2028", "😀",
    "ASC", "DESC", "asc", "CreateTime", "UpdateTime", "Name", "Status", "RUNNING", "train-1", "0", "-1",
    "1e3", "True", "null", "ap-guangzhou", "%FF", "%00", "&", "=", "Filters.0.Name",
]  # fmt: skip
FILTER_NAMES = ["Name", "Id", "Status", "TaskStatus", "ChargeType", "CHARGE_STATUS", "Creator", "Bogus", ""]


def _text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(STRINGS)
    if roll < 0.8:
        return "".join(chr(rng.randint(32, 126)) for _ in range(rng.randint(0, 12)))
    if roll < 0.95:
        return "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(1, 8)))
    return "x" * rng.randint(100, 5000)


def _scalar(rng: random.Random) -> Any:
    return rng.choice(
        [
            None, True, False, 0, 1, -1, 10, 50, 51, 2**63 - 1, 2**63, 2**64 + 5, -(2**70), 1.5, 1e308, -0.0,
            _text(rng), _text(rng), rng.randint(-1000, 1000),
        ]
    )  # fmt: skip


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return _scalar(rng)
    if roll < 0.75:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _filter(rng: random.Random, valid: bool) -> dict[str, Any]:
    f: dict[str, Any] = {"Name": rng.choice(FILTER_NAMES[:7] if valid else FILTER_NAMES)}
    if rng.random() < 0.9:
        f["Values"] = [_text(rng) for _ in range(rng.randint(0, 3))]
    for flag in ("Fuzzy", "Negative"):
        if rng.random() < 0.4:
            f[flag] = rng.choice([True, False] if valid else [True, False, None, "true", 1])
    if not valid and rng.random() < 0.05:
        f[rng.choice(KEYS)] = _scalar(rng)
    return f


def _params(rng: random.Random) -> dict[str, Any]:
    """Plausible DescribeTrainingTasks parameters: half of them valid (odd text aside), half with wrong parts."""
    if rng.random() < 0.2:
        return {rng.choice(KEYS): _value(rng) for _ in range(rng.randint(0, 5))}
    valid = rng.random() < 0.5
    p: dict[str, Any] = {}
    if rng.random() < 0.6:
        p["Filters"] = [_filter(rng, valid) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.3:
        p["TagFilters"] = [
            {"TagKey": _text(rng), "TagValues": [_text(rng) for _ in range(rng.randint(0, 2))]}
            for _ in range(rng.randint(0, 2))
        ]
    for name, choices in (
        ("Limit", [1, 10, 50, 0, 51, -1, "10"]),
        ("Offset", [0, 1, 1000, -5, 2**63]),
        ("Order", ["ASC", "DESC", "desc", "", "UP"]),
        ("OrderField", ["CreateTime", "UpdateTime", "StartTime", "", "Name"]),
        ("TiProjectId", ["", "0", "ws-1", "\x00"]),
    ):
        if rng.random() < 0.3:
            if valid:
                p[name] = rng.choice(choices[:3])
            else:
                p[name] = rng.choice(choices) if rng.random() < 0.8 else _scalar(rng)
    if not valid and rng.random() < 0.1:
        p[rng.choice(KEYS)] = _value(rng)
    return p


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            del buf[pos : pos + rng.randint(1, 8)]
        elif op == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        elif op == 3:
            buf[pos:pos] = rng.choice([b"{", b"}", b"[", b"]", b",", b":", b'"', b"null", b"\\u0000", b"\\ud800"])
        elif op == 4:
            del buf[pos:]
        else:
            start = rng.randint(0, len(buf))
            buf[pos:pos] = buf[start : start + rng.randint(1, 20)]
    return bytes(buf)


def _deep(rng: random.Random) -> bytes:
    """JSON nested 1,000 to 5,000 levels (arrays, objects or both), for issue 7 B6."""
    depth = rng.randint(1000, 5000)
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"Name":', b"}]")])
    return opener * depth + rng.choice([b"1", b"null", b'"x"', b"[]"]) + closer * depth


LOG_QUERY_KEYS = [
    "uin", "region", "project", "service_id", "pod_name", "start_ns", "end_ns", "limit", "descending",
    "keywords", "stream", "position", "mac", "v",
]  # fmt: skip
"""Member names a DescribeLogs Context may carry; crafted Contexts mix them with odd values."""


def _context(rng: random.Random) -> str:
    """A crafted DescribeLogs Context: base64 of JSON that looks like a cursor, of anything, or not base64."""
    roll = rng.random()
    if roll < 0.5:
        doc: Any = {k: _value(rng) for k in rng.sample(LOG_QUERY_KEYS, rng.randint(0, len(LOG_QUERY_KEYS)))}
        raw = json.dumps(doc).encode()
    elif roll < 0.6:
        raw = _deep(rng)
    elif roll < 0.8:
        raw = _mutate(rng, json.dumps(_value(rng)).encode())
    else:
        return _text(rng)
    text = base64.urlsafe_b64encode(raw).decode()
    return _mutate(rng, text.encode()).decode("latin-1") if rng.random() < 0.3 else text


_QUERY_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) not in "#")


def _pairs(rng: random.Random) -> list[tuple[str, str]]:
    """Flattened parameters, either from plausible objects or built from odd keys."""
    if rng.random() < 0.6:
        return flatten(_params(rng))
    keys = [
        "Filters.0.Name", "Filters.0.Values.0", "Filters.1.Values.10", "Filters.0.Fuzzy", "Limit", "Offset",
        "TagFilters.0.TagKey", "TagFilters.0.TagValues.0", "Filters..Name", "Filters.².Name", "Filters.0",
        "Filters.0.Values", "Filters." + "9" * 5000 + ".Name", "Filters.-1.Name", "Filters.0x1.Name",
        "Limit.0", "Id", "Foo", "Foo.Bar", "Signature", "Nonce", "Filters_0_Name", ".", "0",
    ]  # fmt: skip
    return [(rng.choice(keys), _text(rng)) for _ in range(rng.randint(0, 6))]


def _raw_query(rng: random.Random) -> str:
    """A query string that may not be valid form encoding at all."""
    if rng.random() < 0.5:
        return urlencode(_pairs(rng))
    parts = []
    for _ in range(rng.randint(0, 6)):
        roll = rng.random()
        if roll < 0.4:
            parts.append(f"{quote(rng.choice(KEYS))}={quote(_text(rng), safe='')}")
        elif roll < 0.7:
            parts.append("".join(rng.choice(_QUERY_SAFE) for _ in range(rng.randint(0, 10))))
        else:
            parts.append(rng.choice(["", "=", "a", "%", "%zz", "%FF=1", "Limit=%", "&", "Limit=1=2", "%C3%28=x"]))
    return "&".join(parts)


def _header_text(rng: random.Random) -> str:
    """A legal HTTP field value: visible ASCII and spaces, sometimes obs-text (latin-1)."""
    if rng.random() < 0.3:
        return rng.choice(["", "0", "1700000000", "-1", "１", "²", "9" * 30, "ap-guangzhou", "zh-CN", "en-US"])
    top = 255 if rng.random() < 0.2 else 126
    return "".join(chr(rng.choice([c for c in (rng.randint(32, top),) if c != 127] or [65])) for _ in range(8))


HEADERS = [
    "X-TC-Action", "X-TC-Version", "X-TC-Timestamp", "X-TC-Region", "X-TC-Language", "X-TC-Token",
    "X-TC-Content-SHA256", "Content-Type", "Authorization", "Host", "X-TC-RequestClient", "Transfer-Encoding-X",
]  # fmt: skip


class Fuzzer:
    """Builds one random request per call, signed with the server's key where that matters."""

    def __init__(self, rng: random.Random, creds: Creds, host: str) -> None:
        self.rng = rng
        self.creds = creds
        self.host = host
        self.kinds: list[Callable[[], RawRequest]] = [
            self.tc3_json, self.tc3_json, self.tc3_mutated, self.tc3_mutated, self.tc3_get, self.tc3_get,
            self.v1_form, self.v1_get, self.tc3_headers, self.v1_common, self.unsigned_junk, self.tc3_deep,
            self.flat_deep, self.logs_context,
        ]  # fmt: skip

    def action(self) -> str:
        return self.rng.choice(ACTIONS)

    def next(self) -> RawRequest:
        return self.rng.choice(self.kinds)()

    def tc3_json(self) -> RawRequest:
        return tc3_request(self.creds, self.host, _params(self.rng), action=self.action())

    def tc3_mutated(self) -> RawRequest:
        body = _mutate(self.rng, json.dumps(_params(self.rng)).encode())
        return tc3_request(self.creds, self.host, body=body, action=self.action())

    def tc3_get(self) -> RawRequest:
        return tc3_request(self.creds, self.host, method="GET", raw_query=_raw_query(self.rng), action=self.action())

    def v1_form(self) -> RawRequest:
        common = V1(action=self.action(), signature_method=self.rng.choice(["HmacSHA1", "HmacSHA256", None]))
        req = v1_request(self.creds, self.host, pairs=_pairs(self.rng), common=common)
        if self.rng.random() < 0.2:
            req = req.with_body(_mutate(self.rng, req.body))
        return req

    def v1_get(self) -> RawRequest:
        common = V1(action=self.action(), signature_method=self.rng.choice(["HmacSHA1", "HmacSHA256"]))
        req = v1_request(self.creds, self.host, pairs=_pairs(self.rng), method="GET", common=common)
        if self.rng.random() < 0.2:
            req = RawRequest("GET", req.target + "&" + _raw_query(self.rng), req.headers)
        return req

    def tc3_headers(self) -> RawRequest:
        """A TC3 request with one header replaced (re-signed when the header is a signed one)."""
        rng = self.rng
        name = rng.choice(HEADERS)
        value = _header_text(rng)
        params = _params(rng)
        if name == "Host":
            return tc3_request(self.creds, value, params)
        if name == "Content-Type":
            return tc3_request(self.creds, self.host, params, content_type=value or "x")
        if name == "X-TC-Timestamp":
            return tc3_request(self.creds, self.host, params, timestamp_text=value)
        req = tc3_request(self.creds, self.host, params, action=self.action())
        if rng.random() < 0.2:
            return req.with_header(name, None)
        return req.with_header(name, value)

    def v1_common(self) -> RawRequest:
        """A v1 request with one common parameter replaced by random text, signed as sent."""
        rng = self.rng
        f: dict[str, str | None] = {
            "action": self.action(), "version": "2021-11-11", "region": "ap-guangzhou", "timestamp": None,
            "nonce": None, "signature_method": "HmacSHA256", "language": None, "token": None,
        }  # fmt: skip
        f[rng.choice(list(f))] = _text(rng) if rng.random() < 0.8 else None
        common = V1(
            action=f["action"], version=f["version"], region=f["region"], timestamp=f["timestamp"],
            nonce=f["nonce"], signature_method=f["signature_method"], language=f["language"], token=f["token"],
        )  # fmt: skip
        return v1_request(self.creds, self.host, _params(rng), method=rng.choice(["GET", "POST"]), common=common)

    def tc3_deep(self) -> RawRequest:
        """A signed JSON body with a deeply nested value: the whole body, or under a known, common or unknown
        member (issue 7 B6)."""
        deep = _deep(self.rng)
        name = self.rng.choice(["Filters", "TagFilters", "Limit", "Region", "Nonce", "Foo", "Context"])
        body = deep if self.rng.random() < 0.2 else b'{"' + name.encode() + b'": ' + deep + b"}"
        return tc3_request(self.creds, self.host, body=body, action=self.action())

    def flat_deep(self) -> RawRequest:
        """A flattened name with hundreds to thousands of segments, over TC3 GET or v1 (issue 7 B6)."""
        name = self.rng.choice(["Filters", "Foo", "TagFilters"]) + self.rng.choice([".0", ".Name", ".a"]) * (
            self.rng.randint(50, 3000)
        )
        pairs = [(name, "x")]
        if self.rng.random() < 0.5:
            return tc3_request(self.creds, self.host, method="GET", raw_query=urlencode(pairs), action=self.action())
        common = V1(action=self.action())
        return v1_request(self.creds, self.host, pairs=pairs, method=self.rng.choice(["GET", "POST"]), common=common)

    def logs_context(self) -> RawRequest:
        """DescribeLogs with a crafted Context, over TC3 JSON, TC3 GET or v1."""
        params: dict[str, Any] = {"Service": "TRAIN", "ServiceId": "train-1", "Context": _context(self.rng)}
        if self.rng.random() < 0.3:
            params |= {"Limit": self.rng.choice([1, 10, 1000]), "Order": self.rng.choice(["ASC", "DESC"])}
        roll = self.rng.random()
        # A query over 64 KB is refused by the HTTP parser itself (a 400 before the app; noted in issue 7's
        # report): deep Contexts travel in bodies only.
        if roll < 0.6 or len(params["Context"]) > 30_000:
            return tc3_request(self.creds, self.host, params, action="DescribeLogs")
        if roll < 0.8:
            return tc3_request(self.creds, self.host, params, method="GET", action="DescribeLogs")
        return v1_request(self.creds, self.host, params, common=V1(action="DescribeLogs"))

    def unsigned_junk(self) -> RawRequest:
        rng = self.rng
        method = rng.choice(["POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
        ctype = rng.choice([JSON_TYPE, FORM_TYPE, "multipart/form-data", "text/plain", "", "application/xml"])
        headers: tuple[tuple[str, str], ...] = (("Host", self.host),)
        if ctype:
            headers += (("Content-Type", ctype),)
        if rng.random() < 0.3:
            headers += (("Authorization", rng.choice(["", "TC3-HMAC-SHA256", "TC3-HMAC-SHA256 x=y", "Bearer t"])),)
        body = b"" if method == "GET" else _mutate(rng, urlencode(_pairs(rng)).encode() or b"{}")
        return RawRequest(method, "/?" + _raw_query(rng), headers, body)


def _describe(req: RawRequest) -> str:
    return f"{req.method} {req.target[:300]!r} {dict(req.headers)!r} {req.body[:300]!r}"


@pytest.mark.parametrize("seed_offset", [0], ids=["seeded"])
def test_fuzz_replies_are_always_well_formed_envelopes(any_server: Server, seed_offset: int) -> None:
    seed = SEED + seed_offset + (0 if "sqlite" in any_server.database_url else 1)
    rng = random.Random(seed)
    fuzzer = Fuzzer(rng, Creds(any_server.key.secret_id, any_server.key.secret_key), any_server.endpoint)
    deadline = time.monotonic() + SECONDS
    codes: Counter[str] = Counter()
    request_ids: set[str] = set()
    failures: list[str] = []
    sent = 0
    with RawClient(any_server.port) as raw:
        while sent < COUNT and time.monotonic() < deadline:
            req = fuzzer.next()
            sent += 1
            try:
                resp = check_envelope(raw.send(req))
            except (AssertionError, ValueError) as err:
                failures.append(f"#{sent}: {err!r} for {_describe(req)}")
                raw.close()
                continue
            code = resp["Error"]["Code"] if "Error" in resp else "Success"
            codes[code] += 1
            if code == "InternalError":
                failures.append(f"#{sent}: InternalError for {_describe(req)}")
            if resp["RequestId"] in request_ids:
                failures.append(f"#{sent}: RequestId {resp['RequestId']} repeated")
            request_ids.add(resp["RequestId"])
    print(f"fuzz seed {seed}: {sent} requests, replies {dict(codes.most_common())}")
    assert not failures, f"seed {seed}: {len(failures)} bad replies; first ones:\n" + "\n".join(failures[:5])
    assert sent >= min(COUNT, 500), f"only {sent} requests in {SECONDS} s"
    # The fuzzing reached past the signature into decoding and the actions, not just the auth checks.
    assert codes["Success"] > sent // 50, codes
    for reached in ("UnknownParameter", "InvalidParameter", "InvalidParameterValue", "MissingParameter"):
        assert codes[reached] > 0, codes
    log = any_server.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]
