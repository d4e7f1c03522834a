#!/usr/bin/env bash
# Agent gRPC benchmark, every figure beside the machine's ceiling from the same run.
#
#   bench/agentsim/run.sh [N ...]      agent counts (default: 10000 15000)
#
# For each N and each store in $STORES (default "postgres sqlite"), minutes apart:
#   1. ceiling: bench/agentceil (the agent API's transport, no work) driven by agentsim;
#   2. lanyard: one `lanyard serve` on a fresh database, driven by the same agentsim,
#      ending with a replica restart storm for each signal in $STORM_SIGNALS (default
#      "KILL TERM"; each is its own run). On Postgres a second replica serves from the
#      start and the agents fail over to it; on SQLite (one process per database) the
#      replica is restarted in place.
# Results: $OUTDIR (default bench/agentsim/results)/<store>-<kind>-<N>.json, and the table
# for docs/benchmarks.md in $OUTDIR/table.md. `uptime` is recorded before every run.
# CEILING=0 skips the ceiling runs (a quick look at Lanyard alone; the table then has no ratios).
#
# Needs: Postgres at $LANYARD_BENCH_PG (default postgres://postgres@127.0.0.1:5432), jq,
# curl, an open-file limit of at least N + 1000 (`ulimit -Hn`). Listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/../.."
NS=("$@")
[ $# -eq 0 ] && NS=(10000 15000)
STORES=${STORES:-postgres sqlite}
STORM_SIGNALS=${STORM_SIGNALS:-KILL TERM}
BASE=${LANYARD_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
DB=lanyard_agentsim
OUTDIR=${OUTDIR:-bench/agentsim/results}
export GOFLAGS=-tags=nobadger,nobbolt,nomysql
WORK=$(mktemp -d)
mkdir -p "$OUTDIR"
ulimit -n "$(ulimit -Hn)"
go build -o "$WORK/lanyard" ./cmd/lanyard
go build -o "$WORK/lanyardctl" ./cmd/lanyardctl
go build -o "$WORK/agentsim" ./bench/agentsim
go build -o "$WORK/agentceil" ./bench/agentceil

PIDS=()
cleanup() { for p in "${PIDS[@]}" $(cat "$WORK"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
waithttp() { for _ in $(seq 1 120); do curl -fsS "$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.5; done; echo "no answer from $1" >&2; return 1; }
load() { cut -d' ' -f1 /proc/loadavg; }

# The simulator holds 10,000 agents' TLS and gRPC state in one heap (2 GB): at Go's default
# GOGC its collector takes CPU the server would otherwise get, which 10,000 separate
# laptops would not. It runs with GOGC=$SIM_GOGC (400: a few GB more resident); the
# servers keep the default.
SIM_GOGC=${SIM_GOGC:-400}
SIMFLAGS=(-inventory-seconds "${INVENTORY_SECONDS:-30}" -locks "${LOCKS:-500}" -lock-rate "${LOCK_RATE:-25}"
	-idle-seconds "${IDLE_SECONDS:-60}" -enroll 127.0.0.1:18444 -api http://127.0.0.1:18080)

# ceiling N STORE: the no-work server on the same ports, same simulator.
ceiling() {
	local n=$1 out=$OUTDIR/$2-ceiling-$1.json l
	l=$(load)
	"$WORK/agentceil" -agent 127.0.0.1:18443 -enroll 127.0.0.1:18444 -http 127.0.0.1:18080 -ca-out "$WORK/ceil.ca" >"$WORK/ceil.log" 2>&1 &
	local pid=$!
	waithttp http://127.0.0.1:18080
	GOGC=$SIM_GOGC "$WORK/agentsim" -n "$n" "${SIMFLAGS[@]}" -agent 127.0.0.1:18443 -secret ceiling -token ceiling -ca-sha256 "$(cat "$WORK/ceil.ca")" \
		-server-pid "$pid" -cpu-profile-url http://127.0.0.1:18080 -cpu-profile-out "$WORK/ceil-$n.pprof" -out "$out.tmp" >/dev/null
	jq --arg load "$l" '. + {load_before: $load}' "$out.tmp" >"$out" && rm "$out.tmp"
	stop "$pid"
}

# serve NAME HTTP GRPC DEBUG: one replica in the background; its pid in $WORK/NAME.pid.
serve() {
	LANYARD_HTTP_ADDR=$2 LANYARD_GRPC_ADDR=$3 LANYARD_DEBUG_ADDR=$4 "$WORK/lanyard" serve >>"$WORK/$1.log" 2>&1 &
	echo $! >"$WORK/$1.pid"
}

# lanyard N STORE SIGNAL
lanyard() {
	local n=$1 store=$2 sig=$3 out=$OUTDIR/$2-lanyard-$3-$1.json l
	rm -rf "$WORK/data"
	if [ "$store" = postgres ]; then
		psql "$BASE/postgres?sslmode=disable" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
		export LANYARD_DATABASE_URL="$BASE/$DB?sslmode=disable&pool_max_conns=16"
	else
		unset LANYARD_DATABASE_URL
	fi
	export LANYARD_DATA_DIR="$WORK/data" LANYARD_LOG_LEVEL=warn
	# The simulator enrolls every agent from one address, which the per-source limit is for.
	export LANYARD_ENROLL_RATE_LIMIT=off
	l=$(load)
	serve a 127.0.0.1:18080 127.0.0.1:18443 127.0.0.1:16060
	waithttp http://127.0.0.1:18080
	local agents=127.0.0.1:18443 api=http://127.0.0.1:18080 restart=
	if [ "$store" = postgres ]; then
		# The second replica shares the database and the data directory (keyring, CA).
		serve b 127.0.0.1:18090 127.0.0.1:18453 127.0.0.1:16070
		waithttp http://127.0.0.1:18090
		agents=127.0.0.1:18443,127.0.0.1:18453 api=http://127.0.0.1:18090
	else
		# After SIGTERM the old process drains for up to 5 s, and closes its listeners one by
		# one: start once it has exited (as a service manager's restart does).
		restart="old=\$(cat $WORK/a.pid); for i in \$(seq 1 200); do kill -0 \$old 2>/dev/null || break; sleep 0.1; done; LANYARD_HTTP_ADDR=127.0.0.1:18080 LANYARD_GRPC_ADDR=127.0.0.1:18443 LANYARD_DEBUG_ADDR=127.0.0.1:16060 $WORK/lanyard serve >>$WORK/a.log 2>&1 & echo \$! >$WORK/a.pid"
	fi
	local token sec
	token=$("$WORK/lanyard" admin create-org bench --plan pro --owner-email bench@example.com | sed -n 's/^owner token (shown once): //p')
	export LANYARDCTL_CONFIG="$WORK/ctl.json"
	"$WORK/lanyardctl" login --url http://127.0.0.1:18080 --token "$token" >/dev/null
	sec=$("$WORK/lanyardctl" --json enrollment-secrets create --name agentsim)
	GOGC=$SIM_GOGC "$WORK/agentsim" -n "$n" "${SIMFLAGS[@]}" -agent "$agents" -secret "$(echo "$sec" | jq -r .plaintext)" -token "$token" \
		-ca-sha256 "$(echo "$sec" | jq -r .ca_fingerprint_sha256)" -server-pid "$(cat "$WORK/a.pid")" \
		-cpu-profile-url http://127.0.0.1:16060 -cpu-profile-out "$WORK/$store-$n.pprof" \
		-storm "$sig" -storm-api "$api" -storm-restart "$restart" -out "$out.tmp" >/dev/null
	jq --arg load "$l" '. + {load_before: $load}' "$out.tmp" >"$out" && rm "$out.tmp"
	for r in a b; do
		if [ -f "$WORK/$r.pid" ]; then stop "$(cat "$WORK/$r.pid")"; rm -f "$WORK/$r.pid"; fi
	done
	# A replica restarted by the storm is not this shell's child: wait until its port is free.
	for _ in $(seq 1 100); do ss -ltn | grep -q ':18443 ' || break; sleep 0.1; done
}

for n in "${NS[@]}"; do
	for store in $STORES; do
		[ "${CEILING:-1}" = 0 ] || ceiling "$n" "$store"
		for sig in $STORM_SIGNALS; do lanyard "$n" "$store" "$sig"; done
	done
done
bench/agentsim/table.sh "$OUTDIR" >"$OUTDIR/table.md"
cat "$OUTDIR/table.md"
echo "logs and profiles: $WORK"
trap - EXIT
cleanup
