#!/usr/bin/env bash
# bench.sh - spout's load figures on this machine (not part of make test).
#
#   tools/bench.sh [--build DIR] [--quick]
#
# 1. spout against nchan and Pushpin, same run (tools/bench_compare.py):
#    idle memory and connect rate, fan-out stepped to each broker's limit,
#    wide, many-topics and slow-consumer scenarios, CPU per delivery; also
#    spout on epoll next to its io_uring default. Writes the section of
#    docs/benchmarks.md between its markers and docs/bench-p99.png.
# 2. ringbench: the SPSC ring against Concurrency Kit's ck_ring.
# 3. history bytes per retained event, and routing rate with 10,000
#    patterns registered against none (tools/bench_resume.py).
# 4. the cost of scraping /metrics every 100 ms under load
#    (tools/bench_metrics.py).
#
# --quick (make bench-quick): scaled-down scenarios, one repetition, CI-sized;
# its table goes to <build>/bench/quick.md and docs/ are left alone; steps
# 2-4 are skipped. Every run is bounded (spout-bench --max-seconds, timeout
# on each command); servers are stopped by PID.
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

if [ "$quick" -eq 1 ]; then
	timeout 600 python3 tools/bench_compare.py --build "$build" --quick --reps 1 \
		--md "$out_dir/quick.md"
	exit 0
fi

timeout 3600 python3 tools/bench_compare.py --build "$build" --reps 3 \
	--brokers spout,spout-epoll,nchan,pushpin

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
	echo "## history and pattern costs (tools/bench_resume.py)"
	echo
	echo '```'
	timeout 600 python3 tools/bench_resume.py --spoutd "$build/spoutd" \
		--bench "$build/spout-bench"
	echo '```'
	echo
	echo "## cost of /metrics: a scrape every 100 ms (tools/bench_metrics.py)"
	echo
	echo '```'
	timeout 600 python3 tools/bench_metrics.py --spoutd "$build/spoutd" --bench "$build/spout-bench" \
		--rate 2000 --out "$out_dir/metrics-under-load.txt"
	echo '```'
	timeout 600 python3 tools/bench_cluster.py --build "$build" --out "$out_dir/cluster.json"
} | tee "$results"
echo
echo "comparison: docs/benchmarks.md, docs/bench-p99.png; other figures: $results"
