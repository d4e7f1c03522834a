#!/usr/bin/env bash
# Prints the issue-17 table (markdown) from run.sh's result files in DIR: each Lanyard figure
# beside the no-work ceiling of the same run and their ratio, per store and agent count.
#   bench/agentsim/table.sh DIR
set -euo pipefail
DIR=${1:?result directory}
num() { jq -r "$2 // empty" "$1" 2>/dev/null; }
ratio() { if [ -n "$1" ] && [ -n "$2" ] && [ "$2" != 0 ]; then awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; else echo "–"; fi; }
fmt() { if [ -n "$1" ]; then awk -v a="$1" 'BEGIN{if (a < 10) printf "%.2f", a; else printf "%.0f", a}'; else echo "–"; fi; }
for f in "$DIR"/*-ceiling-*.json; do
	[ -e "$f" ] || continue
	store=$(basename "$f" | cut -d- -f1)
	n=$(basename "$f" .json | sed 's/.*-//')
	kill=$DIR/$store-lanyard-KILL-$n.json
	term=$DIR/$store-lanyard-TERM-$n.json
	main=$kill
	[ -e "$main" ] || main=$term
	[ -e "$main" ] || continue
	echo
	echo "**$store, $n agents** (load before: ceiling $(num "$f" .load_before), Lanyard $(num "$main" .load_before))"
	echo
	echo "| measure | target | Lanyard | ceiling | Lanyard / ceiling |"
	echo "|---|---|---|---|---|"
	row() { # label target jq-expr
		local a b
		a=$(num "$main" "$3")
		b=$(num "$f" "$3")
		echo "| $1 | $2 | $(fmt "$a") | $(fmt "$b") | $(ratio "$a" "$b") |"
	}
	row "streams held open" "$n" .streams_open
	row "inventory reports/s" "≥ 4,000" .inventory_reports_per_second
	row "inventory p99 (ms)" "" .inventory_p99_ms
	row "server memory per agent (KB)" "≤ 64" .server_memory_per_agent_kb
	row "… after the inventory phase (KB)" "" .server_memory_per_agent_after_inventory_kb
	row "server goroutines per stream" "" .server_goroutines_per_stream
	row "lock → ack p50 (ms)" "" .lock_to_ack_p50_ms
	row "lock → ack p99 (ms)" "≤ 10" .lock_to_ack_p99_ms
	row "idle server CPU, heartbeats only (cores)" "≤ 0.05" .idle_cpu_server_cores
	row "inventory-phase server CPU (cores)" "" .inventory_cpu_server_cores
	row "streams opened (s)" "" .streams_open_seconds
	for s in "$kill" "$term"; do
		[ -e "$s" ] || continue
		back=$(num "$s" .storm.streams_back)
		if [ "$back" = "$n" ]; then all="$(fmt "$(num "$s" .storm.all_streams_back_seconds)") s ($back/$n back)"; else all="not all back within the wait ($back/$n back)"; fi
		echo "| replica SIG$(basename "$s" | cut -d- -f3) → all streams back (s); commands lost / received twice (after ack) | < 15 s, 0 lost, 0 twice | $all; $(num "$s" .storm.commands_lost) / $(num "$s" .storm.commands_received_twice) ($(num "$s" .storm.commands_received_again_after_ack)) of $(num "$s" .storm.commands_queued_during_outage) | – | – |"
		echo "| … half / 90 % back (s); TLS resumptions; CPU simulator / machine (cores) | | $(fmt "$(num "$s" .storm.streams_back_p50_seconds)") / $(fmt "$(num "$s" .storm.streams_back_p90_seconds)"); $(num "$s" .storm.tls_resumed); $(fmt "$(num "$s" .storm.cpu_simulator_cores)") / $(fmt "$(num "$s" .storm.cpu_machine_cores)") | – | – |"
	done
done
