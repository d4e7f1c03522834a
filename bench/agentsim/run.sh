#!/usr/bin/env bash
# Agent gRPC benchmark: one `lanyard serve` on a fresh Postgres database, and the agentsim
# simulator as a separate process holding N streams. Results go to stdout (JSON) and to
# $OUT (default bench/agentsim/result-N.json). Everything listens on 127.0.0.1.
#
#   bench/agentsim/run.sh [N]          N agents (default 10000)
#
# Needs: Postgres reachable at $LANYARD_BENCH_PG (default postgres://postgres@127.0.0.1:5432),
# an open-file limit of at least N + 1000 for both processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-10000}
BASE=${LANYARD_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
DB=lanyard_agentsim
OUT=${OUT:-bench/agentsim/result-$N.json}
export GOFLAGS=-tags=nobadger,nobbolt,nomysql
WORK=$(mktemp -d)
ulimit -n "$(ulimit -Hn)"

psql "$BASE/postgres?sslmode=disable" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
export LANYARD_DATABASE_URL="$BASE/$DB?sslmode=disable&pool_max_conns=16"
export LANYARD_DATA_DIR="$WORK/data" LANYARD_HTTP_ADDR=127.0.0.1:18080 LANYARD_GRPC_ADDR=127.0.0.1:18443 LANYARD_LOG_LEVEL=warn LANYARD_DEBUG_ADDR=127.0.0.1:16060
# The simulator enrolls every agent from one address, which the per-source limit is for.
export LANYARD_ENROLL_RATE_LIMIT=off
go build -o "$WORK/lanyard" ./cmd/lanyard
go build -o "$WORK/lanyardctl" ./cmd/lanyardctl
go build -o "$WORK/agentsim" ./bench/agentsim

"$WORK/lanyard" serve >"$WORK/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do curl -fsS http://127.0.0.1:18080/healthz >/dev/null 2>&1 && break; sleep 0.5; done

TOKEN=$("$WORK/lanyard" admin create-org bench --plan pro --owner-email bench@agentsim.example | sed -n 's/^owner token (shown once): //p')
export LANYARDCTL_CONFIG="$WORK/ctl.json"
"$WORK/lanyardctl" login --url http://127.0.0.1:18080 --token "$TOKEN" >/dev/null
SEC=$("$WORK/lanyardctl" --json enrollment-secrets create --name agentsim)
SECRET=$(echo "$SEC" | jq -r .plaintext)
CA=$(echo "$SEC" | jq -r .ca_fingerprint_sha256)

"$WORK/agentsim" -n "$N" -enroll 127.0.0.1:18444 -agent 127.0.0.1:18443 -api http://127.0.0.1:18080 \
	-secret "$SECRET" -token "$TOKEN" -ca-sha256 "$CA" -server-pid "$PID" -out "$OUT" \
	-cpu-profile-url http://127.0.0.1:16060 -cpu-profile-out "${PROFILE:-$WORK/inventory.pprof}" \
	-self-cpu-profile "$WORK/agentsim.pprof" \
	-inventory-seconds "${INVENTORY_SECONDS:-30}" -locks "${LOCKS:-500}" -lock-rate "${LOCK_RATE:-25}"
echo "server log: $WORK/serve.log; inventory-phase CPU profile: ${PROFILE:-$WORK/inventory.pprof} (go tool pprof -top $WORK/lanyard ...)"
