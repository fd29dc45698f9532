#!/usr/bin/env bash
# fuzz.sh - run each libFuzzer target (built by `make fuzz-build` into
# build/fuzz/libfuzzer/) for a set time, under ASan+UBSan.
#
#   tools/fuzz.sh --seconds 60 fuzz_http fuzz_topic ...
#
# Each target starts from its seed corpus (test/fuzz/corpus/<t>/, read
# only) plus a working corpus kept between runs in build/fuzz/corpus/<t>/.
# A crash leaves its input in build/fuzz/crashes/<t>/: copy it into
# test/fuzz/regressions/<t>/ once fixed, and `make test` replays it for
# ever. Prints one line per target (executions, corpus size, crashes) and
# a summary in build/fuzz/summary.txt; exits 1 if any target crashed.
set -uo pipefail

seconds=60
while [ $# -gt 0 ]; do
	case "$1" in
	--seconds) seconds=$2; shift 2 ;;
	*) break ;;
	esac
done
cd "$(dirname "$0")/.."
out=build/fuzz
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
crashed=0
for t in "$@"; do
	bin="$out/libfuzzer/$t"
	corpus="$out/corpus/$t"
	crashes="$out/crashes/$t"
	mkdir -p "$corpus" "$crashes"
	log="$out/$t.log"
	# -timeout: one input taking 10 s is a hang; -rss_limit_mb: a leak or
	# runaway allocation is a finding too.
	"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$crashes/" "$corpus" "test/fuzz/corpus/$t" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	ncorpus=$(find "$corpus" -type f | wc -l)
	ncrash=$(find "$crashes" -type f | wc -l)
	line=$(printf '%-16s %6ss  %12s execs  %8s/s  corpus %5s  crashes %s' "$t" "$seconds" \
		"${execs:-?}" "${rate:-?}" "$ncorpus" "$ncrash")
	echo "$line" | tee -a "$summary"
	if [ "$rc" -ne 0 ] || [ "$ncrash" -gt 0 ]; then
		crashed=1
		grep -E "ERROR|SUMMARY|runtime error|==ERROR" "$log" | head -5
		echo "   log: $log; inputs: $crashes/"
	fi
done
[ "$crashed" -eq 0 ]
