#!/usr/bin/env bash
# bench.sh - spout's load figures on this machine (not part of make test).
#
#   tools/bench.sh [--build DIR] [--quick]
#
# 1. ringbench: the SPSC ring against Concurrency Kit's ck_ring.
# 2. fan-out: one spoutd, 1000 subscribers on one topic, 128-byte events,
#    publish rate stepped up; for each step: deliveries/s, loss, latency
#    percentiles, broker CPU seconds and the load tool's own CPU share.
# 3. history bytes per retained event, and routing rate with 10,000
#    patterns registered against none (tools/bench_resume.py).
# 4. the cost of scraping /metrics every 100 ms under load
#    (tools/bench_metrics.py), and one scrape taken under load.
#
# Results go to stdout and build/bench/results.md. Every run is bounded
# (spout-bench --max-seconds, timeout on each command); the broker is
# stopped by PID.
set -euo pipefail

build=build
quick=0
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--quick) quick=1; shift ;;
	*) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

out_dir=$build/bench
mkdir -p "$out_dir"
results=$out_dir/results.md
http_port=$((20000 + RANDOM % 10000))
pub_port=$((http_port + 1))
subs=1000
secs=5
rates=(200 1000 2000 5000 10000)
[ "$quick" -eq 1 ] && { secs=2; rates=(200 1000); }

broker_pid=
cleanup() { [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

{
	echo "# spout bench $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo
	if [ -x "$build/ringbench" ]; then
		echo "## SPSC ring vs ck_ring"
		echo
		echo '```'
		timeout 300 "$build/ringbench" 2>&1 | tail -8
		echo '```'
		echo
	fi
	echo "## fan-out: $subs subscribers, 1 topic, 128-byte events, ${secs}s per step"
	echo
} | tee "$results"

"$build/spoutd" --http "127.0.0.1:$http_port" --pub "127.0.0.1:$pub_port" \
	--log-level warn >"$out_dir/spoutd.log" 2>&1 &
broker_pid=$!
for _ in $(seq 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$pub_port") 2>/dev/null && break
	sleep 0.1
done

{
	echo "| events/s | deliveries/s | lost | dup | p50 ms | p99 ms | max ms | spoutd CPU s | CPU µs/delivery | tool CPU share |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} | tee -a "$results"

for rate in "${rates[@]}"; do
	before=$(cpu_ticks "$broker_pid")
	json=$(timeout 120 "$build/spout-bench" --http "127.0.0.1:$http_port" \
		--pub "127.0.0.1:$pub_port" -s "$subs" -t 1 -r "$rate" -d "$secs" \
		--src-addrs 127.0.0.2-127.0.0.20 --topic-prefix "b$rate" \
		--max-seconds 90 --json) || true
	after=$(cpu_ticks "$broker_pid")
	python3 - "$rate" "$before" "$after" "$hz" "$json" <<'EOF' | tee -a "$results"
import json, sys
rate, before, after, hz, raw = sys.argv[1:6]
try:
    r = json.loads(raw)
except ValueError:
    print("| %s | run failed | | | | | | | | |" % rate)
    sys.exit(0)
cpu = (int(after) - int(before)) / int(hz)
per = cpu * 1e6 / r["received"] if r["received"] else 0
print("| %s | %.0f | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f%% |" % (
    rate, r["deliveries_per_s"], r["lost"], r["duplicated"], r["p50_ms"],
    r["p99_ms"], r["max_ms"], cpu, per, 100 * r["cpu_share"]))
EOF
done

kill "$broker_pid"
wait "$broker_pid" || true
broker_pid=

{
	echo
	echo "## history and pattern costs (tools/bench_resume.py)"
	echo
	echo '```'
	timeout 600 python3 tools/bench_resume.py --spoutd "$build/spoutd" \
		--bench "$build/spout-bench" $([ "$quick" -eq 1 ] && echo "--events 100000 --seconds 2")
	echo '```'
	echo
	echo "## cost of /metrics: a scrape every 100 ms (tools/bench_metrics.py)"
	echo
	echo '```'
	timeout 600 python3 tools/bench_metrics.py --spoutd "$build/spoutd" --bench "$build/spout-bench" \
		--rate 2000 --out "$out_dir/metrics-under-load.txt" $([ "$quick" -eq 1 ] && echo "--reps 1 --seconds 2")
	echo '```'
} | tee -a "$results"
echo
echo "results: $results"
