#!/usr/bin/env bash
# API schema checks (owned by the API maintainer; called from .ci/run).
#
# Starts `points serve` on 127.0.0.1 with a temporary data folder, seeds a little data
# (a merchant, an auditor, members, an item, an order, a settlement), and runs schemathesis
# 4.x against /openapi.json: positive and negative cases, checking that no response is a
# 5xx and that every response's status, content type and body conform to the document.
# Requests to private routes are signed with the issuer key (hooks.py). Any finding fails.
#
# Environment: POINTS_BIN (default: build and use target/release/points),
# ST_MAX_EXAMPLES (default 100), ST_SEED (default 20240601), ST_VENV (default: a temp venv),
# ST_EXTRA_ARGS (more `schemathesis run` options, e.g. `--report har --report-dir DIR`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
HERE=.ci/schemathesis

WORK=$(mktemp -d -t points-schemathesis-XXXXXX)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z ${POINTS_BIN:-} ]]; then
    cargo build --release --bin points
    POINTS_BIN=target/release/points
fi

VENV=${ST_VENV:-$WORK/venv}
if [[ ! -x $VENV/bin/schemathesis ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5' cryptography
fi
"$VENV/bin/schemathesis" --version

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
DATA=$WORK/data
CHAIN=ci.points.local/schemathesis
POINTS_LOG=warn "$POINTS_BIN" serve --data "$DATA" --listen "127.0.0.1:$PORT" \
    --chain-id "$CHAIN" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
for _ in $(seq 1 200); do
    if curl -fsS "$URL/healthz" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$WORK/serve.out" "$WORK/serve.err"
        echo "points serve exited before answering /healthz" >&2
        exit 1
    fi
    sleep 0.1
done
curl -fsS "$URL/healthz" >/dev/null

# Seed: issuer registers a merchant and an auditor, mints the merchant's float; the
# merchant awards points and lists an item; a member redeems it; the period is settled;
# the merchant awards again so a statement is open.
ISSUER=$DATA/issuer.key
p() { POINTS_LOG=warn "$POINTS_BIN" "$@"; }
pub() { p keygen --out "$1" | sed -n 's/^Public key: //p'; }
MERCHANT=$(pub "$WORK/merchant.key")
AUDITOR=$(pub "$WORK/auditor.key")
MEMBER=$(pub "$WORK/member.key")
w() { local key=$1; shift; p wallet --key "$key" --server "$URL" "$@" >/dev/null; }
w "$ISSUER" register-merchant --merchant "$MERCHANT" --name "CI Shop"
w "$ISSUER" register-auditor --auditor "$AUDITOR" --name "CI Auditor"
w "$ISSUER" mint --to "$MERCHANT" --amount 100000
w "$WORK/merchant.key" earn --member "$MEMBER" --amount 5000 --reference ci-1
p mall --key "$WORK/merchant.key" --server "$URL" add --title Mug --price 100 --stock 50 >/dev/null
ITEM=$(curl -fsS "$URL/v1/mall/items" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["item_id"])')
p mall --key "$WORK/member.key" --server "$URL" redeem "$ITEM" --quantity 2 >/dev/null
p settle --key "$ISSUER" --server "$URL" draft --merchant "$MERCHANT" --out "$WORK/draft.json" >/dev/null 2>&1
p settle --key "$WORK/merchant.key" --server "$URL" countersign --statement "$WORK/draft.json" --out "$WORK/signed.json" >/dev/null
p settle --key "$ISSUER" --server "$URL" submit --countersigned "$WORK/signed.json" >/dev/null
w "$WORK/merchant.key" earn --member "$MEMBER" --amount 7 --reference ci-2
w "$WORK/member.key" transfer --to "$MERCHANT" --amount 1
curl -fsS -X POST "$URL/v1/checkpoint" >/dev/null
echo "seeded: $(curl -fsS "$URL/v1/info")"

json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
export ST_MEMBER=$MEMBER ST_MERCHANT=$MERCHANT ST_ITEM=$ITEM
export ST_ORDER=$(curl -fsS "$URL/v1/mall/items/$ITEM" >/dev/null && p mall --key "$WORK/member.key" --server "$URL" orders | json_field 'd["items"][0]["order_id"]')
export ST_SETTLEMENT=$(p settle --key "$ISSUER" --server "$URL" list --merchant "$MERCHANT" | json_field 'd["items"][0]["settlement_id"]')
export ST_CHECKPOINT_SIZE=$(curl -fsS -H 'Accept: application/json' "$URL/v1/checkpoint" | json_field 'd["size"]')
export ST_POINTS_KEY_FILE=$ISSUER ST_POINTS_CHAIN_ID=$CHAIN
export SCHEMATHESIS_HOOKS=hooks PYTHONPATH=$HERE${PYTHONPATH:+:$PYTHONPATH}

# st PASS_NAME MODE [GLOBAL_ARGS...]: one schemathesis pass; every finding fails it.
st() {
    local name=$1 mode=$2
    shift 2
    echo "=== schemathesis: $name ==="
    "$VENV/bin/schemathesis" "$@" run "$URL/openapi.json" \
        --mode "$mode" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --phases examples,coverage,fuzzing \
        --max-examples "${ST_MAX_EXAMPLES:-100}" \
        --seed "${ST_SEED:-20240601}" \
        --workers 2 \
        --request-timeout 30 \
        --suppress-health-check too_slow,filter_too_much \
        --no-color \
        ${ST_EXTRA_ARGS:-}
}
status=0
# Pass 1: positive and negative cases with generated parameters (bad paths, queries, bodies).
st "generated parameters, positive and negative" all || status=$?
# Pass 2: positive cases naming the seeded resources, so the handlers behind lookups run.
if [[ $status -eq 0 ]]; then
    st "seeded resources, positive" positive --config-file "$HERE/seeded.toml" || status=$?
fi
if [[ $status -ne 0 ]]; then
    echo "--- points serve stderr (last 50 lines) ---"
    tail -n 50 "$WORK/serve.err" || true
fi
exit "$status"
