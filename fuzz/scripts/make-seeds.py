#!/usr/bin/env python3
"""Writes the seed corpora of capgate's fuzz targets that come from the repository itself.

- jwt: real tokens of every kind, signed with the test keys of tests/fixtures/ (HS256 with
  the fuzz issuers' secret, RS256, RS256 by JWKS kid, ES256, EdDSA, the issuer with its own
  claim mapping), and the refusals next to them (alg none, expired, wrong audience, another
  key, a duplicated member, algorithm confusion);
- jwks: the fixture JWKS, and JWKS documents of the ES256 and EdDSA fixture keys;
- config: the embedded default configuration, the replica examples, a configuration with
  every table;
- contracts: capabilities/*.toml and the test fixtures' contracts;
- scenarios: policies/tests/*.yaml and policies/admin/tests/*.yaml;
- relationships: the example entity file, and updates like the ones the tests send;
- canonical_digest: argument objects of real calls;
- audit_file: the reference decision log (fuzz/fixtures/decision-log.db).

fuzz/scripts/make-decision-log.sh writes the reference log and the MCP requests of
http_front. Run from anywhere: python3 fuzz/scripts/make-seeds.py
"""

import base64
import hashlib
import hmac
import json
import pathlib
import shutil
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

FUZZ = pathlib.Path(__file__).resolve().parent.parent
REPO = FUZZ.parent
FIXTURES = REPO / "tests" / "fixtures"
CORPUS = FUZZ / "corpus"

# Keep in step with fuzz/src/tokens.rs.
HS_SECRET = b"capgate-fuzz-only-secret-0123456789abcdef"
AUDIENCE = "http://127.0.0.1:8080/mcp"
HS, RS, ES, ED, JWKS, MAPPED = (
    "https://hs.fuzz.capgate.local",
    "https://rs.fuzz.capgate.local",
    "https://es.fuzz.capgate.local",
    "https://ed.fuzz.capgate.local",
    "https://jwks.fuzz.capgate.local",
    "https://mapped.fuzz.capgate.local",
)
# 2100-01-01: seeds stay valid for the life of the repository.
FAR = 4102444800


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key(name: str):
    return serialization.load_pem_private_key((FIXTURES / name).read_bytes(), password=None)


def sign(alg: str, message: bytes, signer) -> bytes:
    if alg == "HS256":
        return hmac.new(signer, message, hashlib.sha256).digest()
    if alg == "RS256":
        return signer.sign(message, padding.PKCS1v15(), hashes.SHA256())
    if alg == "ES256":
        r, s = decode_dss_signature(signer.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "EdDSA":
        return signer.sign(message)
    return b""


def token(header, claims, alg=None, signer=None, raw_header=None, raw_claims=None) -> str:
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    c = raw_claims if raw_claims is not None else json.dumps(claims, separators=(",", ":")).encode()
    message = f"{b64(h)}.{b64(c)}".encode()
    return f"{message.decode()}.{b64(sign(alg or header.get('alg'), message, signer))}"


def claims(iss, **extra):
    base = {"iss": iss, "aud": AUDIENCE, "sub": "alice", "tenant": "acme", "roles": ["analyst"],
            "iat": int(time.time()), "exp": FAR}
    base.update(extra)
    return base


def write(target: str, name: str, data) -> None:
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def jwt_seeds() -> None:
    rs, es, ed = key("test-rs256-private.pem"), key("test-es256-private.pem"), key("test-eddsa-private.pem")
    es_other = key("test-es256-other-private.pem")
    act = {"sub": "drafting-agent", "act": {"sub": "supervisor-agent"}}
    seeds = {
        "hs256": token({"alg": "HS256", "typ": "JWT"}, claims(HS, act=act, run_id="run-1", azp="agent-runtime"), signer=HS_SECRET),
        "rs256": token({"alg": "RS256"}, claims(RS, act={"sub": "risk-agent"}), signer=rs),
        "rs256-jwks": token({"alg": "RS256", "kid": "test-key-1"}, claims(JWKS, scope="cases.read cases.write"), signer=rs),
        "es256": token({"alg": "ES256"}, claims(ES, act={"sub": "d-7", "agent_role": "drafting-agent"}), signer=es),
        "eddsa": token({"alg": "EdDSA"}, claims(ED, tenant="globex", sub="carol"), signer=ed),
        "mapped": token({"alg": "HS256"}, {"iss": MAPPED, "aud": AUDIENCE, "sub": "alice", "org": "acme",
                                           "groups": ["analyst"], "agent": "drafting-agent", "exp": FAR}, signer=HS_SECRET),
        "refused-alg-none": token({"alg": "none"}, claims(HS), alg="none"),
        "refused-expired": token({"alg": "HS256"}, claims(HS, exp=1_000_000_000), signer=HS_SECRET),
        "refused-not-yet-valid": token({"alg": "HS256"}, claims(HS, nbf=FAR - 10), signer=HS_SECRET),
        "refused-audience": token({"alg": "HS256"}, claims(HS, aud="https://elsewhere"), signer=HS_SECRET),
        "refused-other-key": token({"alg": "ES256"}, claims(ES), signer=es_other),
        "refused-confusion": token({"alg": "HS256"}, claims(RS), signer=(FIXTURES / "test-rs256-public.pem").read_bytes()),
        "refused-duplicate-tenant": token(None, None, alg="HS256", signer=HS_SECRET, raw_header=b'{"alg":"HS256"}',
                                          raw_claims=json.dumps(claims(HS)).encode()[:-1] + b',"tenant":"globex"}'),
        "refused-duplicate-act": token(None, None, alg="HS256", signer=HS_SECRET, raw_header=b'{"alg":"HS256"}',
                                       raw_claims=json.dumps(claims(HS)).encode()[:-1] + b',"act":{"sub":"a","sub":"b"}}'),
        "refused-bad-id": token({"alg": "HS256"}, claims(HS, tenant="acme "), signer=HS_SECRET),
        "refused-unknown-kid": token({"alg": "RS256", "kid": "nope"}, claims(JWKS), signer=rs),
    }
    for name, value in seeds.items():
        write("jwt", name, value)


def jwk_of(private, kid: str) -> dict:
    public = private.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        return {"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig", "x": b64(raw)}


def jwks_seeds() -> None:

    write("jwks", "test-jwks.json", (FIXTURES / "test-jwks.json").read_bytes())
    write("jwks", "es256.json", json.dumps({"keys": [jwk_of(key("test-es256-private.pem"), "es-1")]}))
    write("jwks", "eddsa.json", json.dumps({"keys": [jwk_of(key("test-eddsa-private.pem"), "ed-1")]}))
    rs = json.loads((FIXTURES / "test-jwks.json").read_text())["keys"][0]
    write("jwks", "mixed.json", json.dumps({"keys": [rs, jwk_of(key("test-es256-private.pem"), "es-1"),
                                                      jwk_of(key("test-eddsa-private.pem"), "ed-1")]}))


def config_seeds() -> None:
    write("config", "capgate.toml", (REPO / "capgate.toml").read_bytes())
    for path in sorted((REPO / "examples" / "replicas").glob("*.toml")):
        write("config", path.name, path.read_bytes())
    write("config", "every-table.toml", """capabilities_dir = "capabilities"
policies_dir = "policies"
shadow_policies_dir = "policies-next"
data_dir = "data"

[server]
listen = "127.0.0.1:8080"
public_url = "https://gateway.example/mcp"
allowed_hosts = ["gateway.example"]
allowed_origins = ["https://app.example"]
explain_to_agent = "safe"

[admin]
listen = "127.0.0.1:8081"
role = "capgate-admin"
platform_role = "capgate-platform-admin"

[[issuers]]
issuer = "https://issuer.example"
algorithm = "RS256"
jwks_file = "keys/jwks.json"
leeway_seconds = 60
claims = { tenant = "org", roles = "groups", scope = "scp", run_id = "run", agent = "act", agent_role = "agent_role" }

[[issuers]]
issuer = "https://hs.example"
algorithm = "HS256"
secret_env = "HS_SECRET"

[[downstream]]
id = "case"
command = "case-platform"
args = ["--journal", "journal.jsonl"]
timeout_ms = 5000

[[downstream]]
id = "docs"
url = "http://127.0.0.1:9000/mcp"
namespace = "prefix"

[enforcement]
max_calls_per_run = 100
max_cost_per_run = 50
idempotency_lease_seconds = 30

[limits]
max_connections = 256
requests_per_second = 20
request_burst = 40
sessions_per_principal = 8
list_page_size = 50

[audit]
dry_run_tools = ["case__send_approved_notice"]
mask_arguments = ["body"]
checkpoint_every_records = 32
durable_for = "every_call"

[telemetry]
otlp_endpoint = "http://127.0.0.1:4318"
service_name = "capgate"
""")


def text_seeds() -> None:
    for path in sorted((REPO / "capabilities").glob("*.toml")) + sorted((FIXTURES / "capabilities").glob("*.toml")):
        write("contracts", path.name, path.read_bytes())
    for path in sorted((REPO / "policies" / "tests").glob("*.yaml")):
        write("scenarios", path.name, path.read_bytes())
    for path in sorted((REPO / "policies" / "admin" / "tests").glob("*.yaml")):
        write("scenarios", "admin-" + path.name, path.read_bytes())
    entities = json.loads((REPO / "policies" / "entities" / "case-platform.json").read_text())
    write("relationships", "case-platform.json", json.dumps(entities, separators=(",", ":")))
    case = {"uid": {"type": "Case", "id": "case-301"},
            "attrs": {"tenant": {"__entity": {"type": "Tenant", "id": "acme"}},
                      "team": {"__entity": {"type": "Team", "id": "acme-enforcement"}},
                      "status": "open", "risk": "low", "risk_level": 0,
                      "assignees": [{"__entity": {"type": "User", "id": "alice"}}]},
            "parents": [{"type": "Tenant", "id": "acme"}]}
    write("relationships", "update-case.json", json.dumps([case]))
    replaced = dict(case, uid={"type": "Case", "id": "case-201"})
    write("relationships", "update-other-tenants-case.json", json.dumps([replaced]))
    write("relationships", "update-tenant.json", json.dumps([{"uid": {"type": "Tenant", "id": "initech"}, "attrs": {}, "parents": []}]))
    for name, arguments in {
        "read-case": {"case_id": "case-101"},
        "notice": {"case_id": "case-101", "body": "Notice", "nested": {"b": [1, 2.5, None], "a": True}},
        "memory": {"scope": "tenant", "sensitivity": "public"},
        "numbers": {"n": 18446744073709551615, "m": -9223372036854775808, "f": 1.5e300, "z": -0.0},
    }.items():
        write("canonical_digest", name + ".json", json.dumps(arguments))
    log = FUZZ / "fixtures" / "decision-log.db"
    if log.exists():
        write("audit_file", "decision-log.db", log.read_bytes())


if __name__ == "__main__":
    jwt_seeds()
    jwks_seeds()
    config_seeds()
    text_seeds()
    print("seeds written under", CORPUS)
