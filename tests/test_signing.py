"""Unit tests of `tione_server.signing` against the test vectors A–K of api3-protocol §3.5.

The functions are pure, so each vector passes its own timestamp and date; nothing is frozen.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, quote

import pytest

from tione_server import signing

SECRET_ID = "AKIDEXAMPLE"
SECRET_KEY = "SECRETEXAMPLE"
TS = "1700000000"
DATE = "2023-11-14"  # the UTC date of TS; Beijing is already on 2023-11-15
HOST = "127.0.0.1:8080"
BODY_A = b'{"Filters": [{"Name": "Name", "Values": ["a b", "c/d"]}], "Offset": 0, "Limit": 10}'
QUERY_B = "Filters.0.Name=Name&Filters.0.Values.0=a+b&Filters.0.Values.1=c%2Fd&Offset=0&Limit=10"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_SHA256 = "438d4109ef0d676b8c2c7ed13cdfcb418e494d53b843d4634ce3b1085f07bb96"


def _auth(signature: str, date: str = DATE, service: str = "tione", signed: str = "content-type;host") -> str:
    return (
        f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{date}/{service}/tc3_request, "
        f"SignedHeaders={signed}, Signature={signature}"
    )


def _headers(host: str = HOST, content_type: str = "application/json", **extra: str) -> dict[str, str]:
    """Request headers as the gateway holds them: lower-case names, raw values."""
    base = {
        "host": host,
        "content-type": content_type,
        "x-tc-action": "DescribeTrainingTasks",
        "x-tc-timestamp": TS,
        "x-tc-version": "2021-11-11",
        "x-tc-region": "ap-guangzhou",
        "x-tc-language": "zh-CN",
    }
    return base | extra


def _canonical_hash(s2s: str) -> str:
    """The last line of a StringToSign: the hex SHA-256 of the canonical request."""
    algorithm, _timestamp, _scope, digest = s2s.split("\n")
    assert algorithm == "TC3-HMAC-SHA256"
    return digest


def test_signing_tc3_derived_key_matches_vector() -> None:
    key = signing.tc3_signing_key(SECRET_KEY, DATE, "tione")
    assert key.hex() == "abcdbd3ac1a0e7846ae2ccc0077cae12159d057051814f49caa47162a600a4c3"


def test_signing_tc3_post_json_vector_a() -> None:
    canonical = (
        "POST\n/\n\ncontent-type:application/json\nhost:127.0.0.1:8080\n\ncontent-type;host\n"
        "1bba697c2769a54512c6a4014a8627c7f3cf66c54c5c8fa3a57245ed3818114b"
    )
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "f765a448f4fd10d86320beb8c30dfc81b223c8ee778e3e022500fda098068610"
    )
    assert signing.payload_hash(BODY_A, unsigned=False) == canonical.rsplit("\n", 1)[1]
    s2s = signing.tc3_string_to_sign(
        method="POST",
        raw_query="",
        headers=_headers(),
        signed_headers=("content-type", "host"),
        hashed_payload=signing.payload_hash(BODY_A, unsigned=False),
        timestamp=TS,
        date=DATE,
        service="tione",
        lowercase_values=False,
    )
    assert s2s == (
        "TC3-HMAC-SHA256\n1700000000\n2023-11-14/tione/tc3_request\n"
        "f765a448f4fd10d86320beb8c30dfc81b223c8ee778e3e022500fda098068610"
    )
    key = signing.tc3_signing_key(SECRET_KEY, DATE, "tione")
    assert signing.tc3_signature(key, s2s) == "b7675a362bea060a1dae602f004da4f1edc3289332bfa8f10885d0e99f74d000"


def _verify(
    signature: str,
    *,
    method: str = "POST",
    raw_query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = BODY_A,
    secret_key: str = SECRET_KEY,
    timestamp: str = TS,
    date: str = DATE,
    service: str = "tione",
    signed: str = "content-type;host",
) -> bool:
    auth = signing.parse_tc3_authorization(_auth(signature, date, service, signed))
    return signing.verify_tc3(
        auth,
        secret_key,
        method=method,
        raw_query=raw_query,
        headers=headers if headers is not None else _headers(),
        body=body,
        timestamp=timestamp,
    )


SIG_A = "b7675a362bea060a1dae602f004da4f1edc3289332bfa8f10885d0e99f74d000"


def test_signing_tc3_verify_accepts_vector_a() -> None:
    assert _verify(SIG_A)


@pytest.mark.parametrize(
    "change",
    [
        {"body": BODY_A.replace(b"10", b"11")},
        {"headers": _headers(host="127.0.0.1:8081")},
        {"headers": _headers(content_type="application/json; charset=utf-8")},
        {"secret_key": "SECRETEXAMPLF"},
        {"timestamp": "1700000001"},
        {"date": "2023-11-15"},
        {"method": "GET"},
    ],
    ids=["body", "host", "content-type", "key", "timestamp", "date", "method"],
)
def test_signing_tc3_verify_rejects_tampered_vector_a(change: dict[str, object]) -> None:
    assert not _verify(SIG_A, **change)  # type: ignore[arg-type]


def test_signing_tc3_get_vector_b() -> None:
    headers = _headers(content_type="application/x-www-form-urlencoded")
    s2s = signing.tc3_string_to_sign(
        method="GET",
        raw_query=QUERY_B,
        headers=headers,
        signed_headers=("content-type", "host"),
        hashed_payload=signing.payload_hash(b"", unsigned=False),
        timestamp=TS,
        date=DATE,
        service="tione",
        lowercase_values=False,
    )
    assert signing.payload_hash(b"", unsigned=False) == EMPTY_SHA256
    assert _canonical_hash(s2s) == "f90979442bb04b4a2bb654b155181277880dc1a166f4557ac44ceac6be2b086a"
    sig = "b67f38b96000eb9e72e4b39bbaf01b36a776954551c40c9521590cb8b181a4c0"
    assert signing.tc3_signature(signing.tc3_signing_key(SECRET_KEY, DATE, "tione"), s2s) == sig
    assert _verify(sig, method="GET", raw_query=QUERY_B, headers=headers, body=b"")
    # The canonical query is the raw text: a re-encoded (or re-ordered) query no longer verifies.
    requoted = QUERY_B.replace("a+b", "a%20b")
    assert not _verify(sig, method="GET", raw_query=requoted, headers=headers, body=b"")


def test_signing_tc3_get_ignores_body_vector_b() -> None:
    """A GET's payload hash is that of the empty string whatever arrives as a body."""
    headers = _headers(content_type="application/x-www-form-urlencoded")
    sig = "b67f38b96000eb9e72e4b39bbaf01b36a776954551c40c9521590cb8b181a4c0"
    assert _verify(sig, method="GET", raw_query=QUERY_B, headers=headers, body=b"ignored")


V1_PAIRS_C = (
    "Filters.0.Name=Name&Filters.0.Values.0=a+b&Filters.0.Values.1=c%2Fd&Offset=0&Limit=10"
    "&Action=DescribeTrainingTasks&RequestClient=SDK_PYTHON_3.1.191&Nonce=12345&Timestamp=1700000000"
    "&Version=2021-11-11&Region=ap-guangzhou&SecretId=AKIDEXAMPLE&SignatureMethod={method}&Language=zh-CN"
)
V1_SOURCE_TAIL = (
    "127.0.0.1:8080/?Action=DescribeTrainingTasks&Filters.0.Name=Name&Filters.0.Values.0=a b"
    "&Filters.0.Values.1=c/d&Language=zh-CN&Limit=10&Nonce=12345&Offset=0&Region=ap-guangzhou"
    "&RequestClient=SDK_PYTHON_3.1.191&SecretId=AKIDEXAMPLE&SignatureMethod={method}&Timestamp=1700000000"
    "&Version=2021-11-11"
)


@pytest.mark.parametrize(
    ("vector", "method", "algo", "signature"),
    [
        ("C", "POST", "HmacSHA256", "Cnh5r60iZgHm7yPwX4iLspsGZ31tD1DNGm8od14CO7Q="),
        ("D", "GET", "HmacSHA1", "3B7QtV9XuF/Jit4yB/4xsvfUffc="),
    ],
)
def test_signing_v1_vectors_c_d(vector: str, method: str, algo: str, signature: str) -> None:
    params = parse_qsl(V1_PAIRS_C.format(method=algo), keep_blank_values=True, strict_parsing=True)
    source = signing.v1_source(method, HOST, params)
    assert source == method + V1_SOURCE_TAIL.format(method=algo), vector
    assert signing.v1_signature(SECRET_KEY, source, algo) == signature
    wire = V1_PAIRS_C.format(method=algo) + "&Signature=" + quote(signature, safe="")
    decoded = parse_qsl(wire, keep_blank_values=True, strict_parsing=True)
    assert signing.verify_v1(SECRET_KEY, method=method, host=HOST, params=decoded)
    assert not signing.verify_v1(SECRET_KEY, method=method, host="127.0.0.1:8081", params=decoded)
    assert not signing.verify_v1(SECRET_KEY, method="PUT", host=HOST, params=decoded)


def test_signing_v1_signature_survives_url_encoding_vector_d() -> None:
    """The wire form `3B7QtV9XuF%2FJit4yB%2F4xsvfUffc%3D` decodes to the presented signature."""
    wire = V1_PAIRS_C.format(method="HmacSHA1") + "&Signature=3B7QtV9XuF%2FJit4yB%2F4xsvfUffc%3D"
    params = parse_qsl(wire, keep_blank_values=True, strict_parsing=True)
    assert signing.verify_v1(SECRET_KEY, method="GET", host=HOST, params=params)
    tampered = [(k, v.replace("Name", "Nome") if k == "Filters.0.Name" else v) for k, v in params]
    assert not signing.verify_v1(SECRET_KEY, method="GET", host=HOST, params=tampered)


def test_signing_v1_unknown_method_means_hmac_sha1() -> None:
    sha1 = signing.v1_signature(SECRET_KEY, "GET127.0.0.1:8080/?A=1", "HmacSHA1")
    assert signing.v1_signature(SECRET_KEY, "GET127.0.0.1:8080/?A=1", "HmacMD5") == sha1
    assert signing.v1_signature(SECRET_KEY, "GET127.0.0.1:8080/?A=1", "") == sha1
    assert signing.v1_signature(SECRET_KEY, "GET127.0.0.1:8080/?A=1", "HmacSHA256") != sha1


def test_signing_v1_underscore_keys_sign_as_dots() -> None:
    dotted = signing.v1_source("GET", HOST, [("Filters.0.Name", "x"), ("Action", "A")])
    underscored = signing.v1_source("GET", HOST, [("Filters_0_Name", "x"), ("Action", "A")])
    assert dotted == underscored == "GET127.0.0.1:8080/?Action=A&Filters.0.Name=x"


def test_signing_v1_sorts_keys_bytewise() -> None:
    source = signing.v1_source("GET", HOST, [("Ids.2", "b"), ("Ids.12", "a"), ("Action", "A")])
    assert source == "GET127.0.0.1:8080/?Action=A&Ids.12=a&Ids.2=b"


def test_signing_tc3_tccli_host_with_token_vector_e() -> None:
    body = b'{"Limit": 10}'
    assert signing.payload_hash(body, unsigned=False) == (
        "27261e95e84c95770ce9744c8eed1c616d328daf7f839696d078583648979046"
    )
    headers = _headers(host="http://127.0.0.1:8080", **{"x-tc-token": "TOKENEXAMPLE"})
    s2s = signing.tc3_string_to_sign(
        method="POST",
        raw_query="",
        headers=headers,
        signed_headers=("content-type", "host"),
        hashed_payload=signing.payload_hash(body, unsigned=False),
        timestamp=TS,
        date=DATE,
        service="tione",
        lowercase_values=False,
    )
    assert _canonical_hash(s2s) == "91205626eccdd1c1bf6bcee1256a432f1c34893c26da4388dc4c12604dd1edc9"
    sig = "ca4bdce1542b9b142c162a09b44c6daf2abd56b516174e3bcf875f1aebb39b1d"
    assert _verify(sig, headers=headers, body=body)
    assert not _verify(sig, headers=_headers(host="127.0.0.1:8080"), body=body)


def test_signing_tc3_unsigned_payload_vector_f() -> None:
    body = b'{"Limit": 10}'
    assert signing.payload_hash(body, unsigned=True) == UNSIGNED_SHA256
    headers = _headers(**{"x-tc-content-sha256": "UNSIGNED-PAYLOAD"})
    sig = "a48d1094565f743db1f60ae3cbffec53354c12d5c6786963e79d7908ff5004cf"
    assert _verify(sig, headers=headers, body=body)
    # The body is not covered: any body verifies, but not without the opt-in header.
    assert _verify(sig, headers=headers, body=b'{"Limit": 50}')
    assert not _verify(sig, headers=_headers(), body=body)


def test_signing_tc3_empty_parameters_vector_g() -> None:
    assert signing.payload_hash(b"{}", unsigned=False) == (
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    assert _verify("1abfe8495334ffff802caae8770610d4a28e4437265009c80dbb34916c78bb6b", body=b"{}")


def test_signing_v1_with_token_vector_h() -> None:
    params = [
        ("Limit", "10"), ("Action", "DescribeTrainingTasks"), ("RequestClient", "SDK_PYTHON_3.1.191"),
        ("Nonce", "12345"), ("Timestamp", TS), ("Version", "2021-11-11"), ("Region", "ap-guangzhou"),
        ("Token", "TOKENEXAMPLE"), ("SecretId", SECRET_ID), ("SignatureMethod", "HmacSHA1"),
        ("Language", "en-US"), ("Signature", "Fj0wNJFwJ+le5PI4g5yrmv9m6SM="),
    ]  # fmt: skip
    source = signing.v1_source("POST", HOST, params)
    assert source == (
        "POST127.0.0.1:8080/?Action=DescribeTrainingTasks&Language=en-US&Limit=10&Nonce=12345"
        "&Region=ap-guangzhou&RequestClient=SDK_PYTHON_3.1.191&SecretId=AKIDEXAMPLE&SignatureMethod=HmacSHA1"
        "&Timestamp=1700000000&Token=TOKENEXAMPLE&Version=2021-11-11"
    )
    assert signing.v1_signature(SECRET_KEY, source, "HmacSHA1") == "Fj0wNJFwJ+le5PI4g5yrmv9m6SM="
    assert signing.verify_v1(SECRET_KEY, method="POST", host=HOST, params=params)
    # The token is inside a v1 signature: dropping it breaks verification.
    assert not signing.verify_v1(SECRET_KEY, method="POST", host=HOST, params=[p for p in params if p[0] != "Token"])


def test_signing_tc3_lowercased_header_values_vector_i() -> None:
    body = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    assert signing.payload_hash(body, unsigned=False) == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    headers = {
        "host": "cvm.tencentcloudapi.com",
        "content-type": "application/json; charset=utf-8",
        "x-tc-action": "DescribeInstances",
        "x-tc-timestamp": "1551113065",
    }
    s2s = signing.tc3_string_to_sign(
        method="POST",
        raw_query="",
        headers=headers,
        signed_headers=("content-type", "host", "x-tc-action"),
        hashed_payload=signing.payload_hash(body, unsigned=False),
        timestamp="1551113065",
        date="2019-02-25",
        service="cvm",
        lowercase_values=True,
    )
    assert _canonical_hash(s2s) == "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
    sig = "121ced60469f9a7321eb609cce757164c23f381788a980523f7ccc312fd7abfa"
    assert _verify(
        sig,
        headers=headers,
        body=body,
        timestamp="1551113065",
        date="2019-02-25",
        service="cvm",
        signed="content-type;host;x-tc-action",
    )


def test_signing_v1_documentation_vector_j() -> None:
    source = (
        "GETcvm.tencentcloudapi.com/?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg&Limit=20"
        "&Nonce=11886&Offset=0&Region=ap-guangzhou&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******"
        "&Timestamp=1465185768&Version=2017-03-12"
    )
    params = parse_qsl(source.split("?", 1)[1], strict_parsing=True)
    assert signing.v1_source("GET", "cvm.tencentcloudapi.com", params) == source
    key = "Gu5t9xGARNpq86cd98joQYCN3*******"
    assert signing.v1_signature(key, source, "HmacSHA1") == "zmmjn35mikh6pM3V7sUEuX4wyYM="
    # An absent SignatureMethod means HmacSHA1.
    signed = [*params, ("Signature", "zmmjn35mikh6pM3V7sUEuX4wyYM=")]
    assert signing.verify_v1(key, method="GET", host="cvm.tencentcloudapi.com", params=signed)


def test_signing_tc3_uppercase_host_raw_value_fallback_vector_k() -> None:
    """The SDK signs `host:LocalHost:8080` verbatim (signature computed by the SDK for vector A's inputs)."""
    sig = "45746d40fffa74a90dffe4364f0cc51016e17ac1c988c38f2e5de18f3d74b64e"
    headers = _headers(host="LocalHost:8080")
    lowered = signing.tc3_string_to_sign(
        method="POST",
        raw_query="",
        headers=headers,
        signed_headers=("content-type", "host"),
        hashed_payload=signing.payload_hash(BODY_A, unsigned=False),
        timestamp=TS,
        date=DATE,
        service="tione",
        lowercase_values=True,
    )
    key = signing.tc3_signing_key(SECRET_KEY, DATE, "tione")
    assert signing.tc3_signature(key, lowered) != sig  # lower-casing alone would reject it ...
    assert _verify(sig, headers=headers)  # ... the raw-value fallback accepts it
    assert not _verify(sig, headers=_headers(host="localhost:8080"))


@pytest.mark.parametrize(
    "header",
    [
        "TC3-HMAC-SHA1 Credential=AKIDEXAMPLE/2023-11-14/tione/tc3_request, SignedHeaders=content-type;host, "
        "Signature=ab",
        "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2023-11-14/tione/tc3_request, SignedHeaders=content-type;host",
        "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2023-11-14/tione, SignedHeaders=content-type;host, Signature=ab",
        "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2023-11-14/tione/v4_request, SignedHeaders=content-type;host, "
        "Signature=ab",
        "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2023-11-14/tione/tc3_request, SignedHeaders=host, Signature=ab",
        "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2023-11-14/tione/tc3_request, SignedHeaders=content-type, "
        "Signature=ab",
        "TC3-HMAC-SHA256 garbage",
        "TC3-HMAC-SHA256 ",
        "TC3-HMAC-SHA256 Credential=/2023-11-14/tione/tc3_request, SignedHeaders=content-type;host, Signature=ab",
    ],
    ids=[
        "algorithm", "no-signature", "short-credential", "wrong-terminator", "no-content-type", "no-host",
        "garbage", "empty", "empty-secret-id",
    ],
)  # fmt: skip
def test_signing_tc3_parse_rejects_malformed_authorization(header: str) -> None:
    with pytest.raises(signing.MalformedAuthorization):
        signing.parse_tc3_authorization(header)


def test_signing_tc3_parse_reads_all_parts() -> None:
    auth = signing.parse_tc3_authorization(_auth(SIG_A.upper(), signed="content-type;host;x-tc-action"))
    assert auth.secret_id == SECRET_ID
    assert auth.date == DATE
    assert auth.service == "tione"
    assert auth.signed_headers == ("content-type", "host", "x-tc-action")
    assert auth.signature == SIG_A  # compared lower-case


def test_signing_tc3_absent_signed_header_is_key_error() -> None:
    with pytest.raises(KeyError):
        _verify(SIG_A, signed="content-type;host;x-tc-foo")


# -- issue 13: SDKs that take the service from their endpoint, and sign the host without its port -------------

# Signed by tencentcloud-sdk-nodejs 4.1.313 (`Sign.sign3`) for endpoints `127.0.0.1:8080` and `[::1]:8080`:
# the scope holds the endpoint's first label, the canonical host is the URL's hostname (no port).
NODE_POST = "239019cf19b321ec61b074cc93512887b8e4a3b59f57ac5f1dc08659a9212862"
NODE_GET_IPV6 = "e92f3cc88a37f6ad88d280e02fd371710091c6d7e29ffa2a28d23b6b4fd3f8d1"


@pytest.mark.parametrize(
    ("host", "label"),
    [
        ("127.0.0.1:8080", "127"), ("127.0.0.1", "127"), ("tione.tencentcloudapi.com", "tione"),
        ("localhost:8080", "localhost"), ("LocalHost:8080", "localhost"), ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"), ("[::ffff:127.0.0.1]:8080", "[::ffff:127"), ("Api.Example.com:443", "api"), ("", ""),
    ],
)  # fmt: skip
def test_signing_tc3_host_label(host: str, label: str) -> None:
    assert signing.host_label(host) == label


@pytest.mark.parametrize(
    ("service", "host", "accepted"),
    [
        ("tione", "127.0.0.1:8080", True), ("127", "127.0.0.1:8080", True), ("localhost:8080", "localhost:8080", True),
        ("LOCALHOST:8080", "localhost:8080", True), ("localhost", "localhost:8080", True),
        ("[::1]:8080", "[::1]:8080", True), ("[::ffff:127", "[::ffff:127.0.0.1]:8080", True),
        ("tione", "", True), ("128", "127.0.0.1:8080", False), ("127.0.0.1", "127.0.0.1:8080", False),
        ("cvm", "127.0.0.1:8080", False), ("TIONE", "127.0.0.1:8080", False), ("127", "", False),
        ("[::2]:8080", "[::1]:8080", False), ("localhost", "localhost.example.com:8080", True),
        ("example", "localhost.example.com", False),
    ],
)  # fmt: skip
def test_signing_tc3_service_accepted(service: str, host: str, accepted: bool) -> None:
    assert signing.tc3_service_accepted(service, host, "tione") is accepted


@pytest.mark.parametrize(
    ("method", "host", "service", "query", "body", "content_type", "signature"),
    [
        ("POST", "127.0.0.1:8080", "127", "", b'{"Limit":10}', "application/json", NODE_POST),
        ("GET", "[::1]:8080", "[::1]:8080", "Limit=10", b"", "application/x-www-form-urlencoded", NODE_GET_IPV6),
    ],
    ids=["post-ipv4", "get-ipv6"],
)
def test_signing_tc3_verify_accepts_host_signed_without_port(
    method: str, host: str, service: str, query: str, body: bytes, content_type: str, signature: str
) -> None:
    auth = signing.parse_tc3_authorization(_auth(signature, service=service))

    def verify(sent_host: str) -> bool:
        headers = _headers(host=sent_host, content_type=content_type)
        return signing.verify_tc3(
            auth, SECRET_KEY, method=method, raw_query=query, headers=headers, body=body, timestamp=TS
        )

    assert verify(host)
    assert not verify(host.replace("1", "2"))  # the port is all that may be missing: another host still fails
