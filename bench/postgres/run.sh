#!/usr/bin/env bash
# The Postgres peer of `points bench --mode transfer`.
#
# Starts a throwaway PostgreSQL cluster on 127.0.0.1 in a temporary folder (durable:
# fsync=on, synchronous_commit=on), loads schema.sql, runs pgbench with transfer.sql for
# PG_DURATION seconds at each client count in PG_CLIENTS, prints one line per count:
#
#   clients=N transfers_per_sec=X
#
# and a last line `best clients=N transfers_per_sec=X`. Installs Debian's postgresql if it
# is missing. Everything it starts is stopped and removed on exit.
#
# Environment: PG_DURATION (20), PG_CLIENTS ("1 16 64"), PG_MEMBERS (20000), PG_PORT (a free
# port is picked), PG_KEEP=1 to keep the cluster folder.
set -euo pipefail

DURATION=${PG_DURATION:-20}
CLIENTS=${PG_CLIENTS:-"1 16 64"}
MEMBERS=${PG_MEMBERS:-20000}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { echo "postgres peer: $*" >&2; }

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    log "installing postgresql (apt-get)"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
for tool in initdb pg_ctl postgres; do
    [ -x "$BIN/$tool" ] || { log "missing $BIN/$tool"; exit 1; }
done
PSQL=$(command -v psql || echo "$BIN/psql")
PGBENCH=$(command -v pgbench || echo "$BIN/pgbench")

# The server refuses to run as root: run it as the `postgres` user when we are root.
AS=()
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    if command -v runuser >/dev/null 2>&1; then AS=(runuser -u postgres --); else AS=(su postgres -s /bin/sh -c); fi
fi
as_pg() {
    if [ ${#AS[@]} -eq 0 ]; then "$@";
    elif [ "${AS[0]}" = runuser ]; then "${AS[@]}" "$@";
    else "${AS[@]}" "$(printf '%q ' "$@")"; fi
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/points-pg.XXXXXX")
chmod 755 "$WORK"
[ ${#AS[@]} -eq 0 ] || chown postgres "$WORK"
DATA="$WORK/data"

if [ -n "${PG_PORT:-}" ]; then
    PORT=$PG_PORT
else
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)))
fi

cleanup() {
    as_pg "$BIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
    if [ "${PG_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}
trap cleanup EXIT

log "initdb in $WORK ($(basename "$(dirname "$BIN")") $("$BIN/postgres" --version | awk '{print $3}'))"
as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --no-instructions >/dev/null
MAXCONN=$(( $(echo "$CLIENTS" | tr ' ' '\n' | sort -n | tail -n 1) + 10 ))
as_pg "$BIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w start -o \
    "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$WORK \
     -c fsync=on -c synchronous_commit=on -c full_page_writes=on \
     -c max_connections=$MAXCONN -c shared_buffers=256MB" >/dev/null

CONN=(-h 127.0.0.1 -p "$PORT" -U postgres)
"$PSQL" "${CONN[@]}" -q -v ON_ERROR_STOP=1 -v members="$MEMBERS" -f "$HERE/schema.sql" postgres >/dev/null

best=0
best_clients=0
for c in $CLIENTS; do
    threads=$(( c < 2 ? c : 2 ))
    log "pgbench: $c clients, ${DURATION} s"
    out=$("$PGBENCH" "${CONN[@]}" -n -f "$HERE/transfer.sql" -D members="$MEMBERS" \
          -c "$c" -j "$threads" -T "$DURATION" postgres 2>&1) || { echo "$out" >&2; exit 1; }
    tps=$(echo "$out" | awk '/^tps = / {print $3; exit}')
    failed=$(echo "$out" | awk '/number of failed transactions/ {print $5; exit}')
    if [ -z "$tps" ]; then echo "$out" >&2; log "no tps in the pgbench output"; exit 1; fi
    echo "clients=$c transfers_per_sec=$tps failed=${failed:-0}"
    if awk -v a="$tps" -v b="$best" 'BEGIN { exit !(a > b) }'; then best=$tps; best_clients=$c; fi
done

# The chain must verify: recompute every hash from the rows.
bad=$("$PSQL" "${CONN[@]}" -At -c "
    SELECT count(*) FROM transfers t
    WHERE t.hash <> sha256(t.prev_hash || int8send(t.seq) || int8send(t.from_account)
                           || int8send(t.to_account) || int8send(t.amount) || int8send(t.op_id)
                           || int8send((extract(epoch FROM t.created_at) * 1000)::bigint))
       OR t.prev_hash <> coalesce((SELECT p.hash FROM transfers p WHERE p.seq = t.seq - 1),
                                  decode(repeat('00', 32), 'hex'))" postgres)
rows=$("$PSQL" "${CONN[@]}" -At -c "SELECT count(*) FROM transfers" postgres)
log "chain of $rows transfers checked: $bad bad links"
[ "$bad" = 0 ] || exit 1
echo "best clients=$best_clients transfers_per_sec=$best"
