"""Schemathesis hooks for points-ledger: sign every request to a protected route.

Private reads need `Authorization: Points-Ed25519 key=<hex>, ts=<unix ms>, sig=<hex>`
(ledger-spec/api.md §3). This hook signs each call to an operation that declares the
`points_ed25519` security requirement with the key in $ST_POINTS_KEY_FILE (the issuer's,
which may read everything), over the exact path and query that will be sent, so the run
exercises the handlers behind the access check and not only its 401.

Environment: ST_POINTS_KEY_FILE (a `points keygen` key file), ST_POINTS_CHAIN_ID.
"""

import os
import threading
import time

import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DOMAIN = b"points-ledger/request/v1\x00"


def _load_key(path):
    seed = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("secret "):
                seed = bytes.fromhex(line.split()[1])
    if seed is None:
        raise RuntimeError(f"{path}: no `secret` line")
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return key, key.public_key().public_bytes_raw().hex()


KEY, PUBLIC = _load_key(os.environ["ST_POINTS_KEY_FILE"])
CHAIN_ID = os.environ["ST_POINTS_CHAIN_ID"]
_lock = threading.Lock()
_last_ts = [0]


def _next_ts():
    # Strictly increasing, so two identical requests never share a signature (a replay).
    with _lock:
        ts = max(int(time.time() * 1000), _last_ts[0] + 1)
        _last_ts[0] = ts
        return ts


def _secured(case):
    security = case.operation.definition.raw.get("security") or []
    return any(requirement for requirement in security)


@schemathesis.hook
def before_call(context, case, kwargs):
    if not _secured(case):
        return
    sent = case.as_transport_kwargs(base_url=case.operation.base_url)
    prepared = requests.Request(
        method=sent["method"], url=sent["url"], params=sent.get("params")
    ).prepare()
    ts = _next_ts()
    message = b"%s%s\n%s\n%d\n%s" % (
        DOMAIN,
        sent["method"].upper().encode(),
        prepared.path_url.encode(),
        ts,
        CHAIN_ID.encode(),
    )
    signature = KEY.sign(message).hex()
    if case.headers is None:
        case.headers = {}
    case.headers["Authorization"] = (
        f"Points-Ed25519 key={PUBLIC}, ts={ts}, sig={signature}"
    )
