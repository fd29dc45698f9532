#!/usr/bin/env bash
# run-tests.sh - run spout's tests against one build directory and end with
# a single "N passed, N failed" line (Criterion's per-binary synthesis lines
# and the integration runner's count are summed).
#
#   tools/run-tests.sh --build build all          unit + integration
#   tools/run-tests.sh --build build unit
#   tools/run-tests.sh --build build integration [-k filter]
#   tools/run-tests.sh --build build/tsan tsan    concurrency tests only
set -uo pipefail

build=build
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	*) break ;;
	esac
done
what=${1:-all}
shift || true

# Sanitizer builds: stop at the first UB report, fail the process on a
# leak or race (the integration harness also scans the broker's log).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:exitcode=66:second_deadlock_stack=1}

passed=0
failed=0
log_dir=test/artifacts
mkdir -p "$log_dir"

run_criterion() {  # <binary> [criterion args...]
	local bin=$1; shift
	local out
	echo "== $(basename "$bin") ($build)"
	out=$("$bin" --jobs 1 "$@" 2>&1)
	local rc=$?
	echo "$out" | grep -E '^\[(----|FAIL|PASS|ERR|WARN)\]|Synthesis|Assertion|Aborting|SUMMARY|ERROR:|WARNING:' | tail -40
	local syn
	syn=$(echo "$out" | grep -E 'Synthesis: Tested:' | tail -1)
	if [ -z "$syn" ]; then
		echo "   no Criterion synthesis (crashed?), rc=$rc"
		echo "$out" | tail -20
		failed=$((failed + 1))
		return
	fi
	local p f c
	p=$(echo "$syn" | sed -E 's/.*Passing: ([0-9]+).*/\1/')
	f=$(echo "$syn" | sed -E 's/.*Failing: ([0-9]+).*/\1/')
	c=$(echo "$syn" | sed -E 's/.*Crashing: ([0-9]+).*/\1/')
	passed=$((passed + p))
	failed=$((failed + f))
	# Criterion counts a crash as a failure too; an rc != 0 with no
	# failure counted means a sanitizer report at exit.
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$c" -eq 0 ]; then
		echo "   exit status $rc without a failing test (sanitizer report?)"
		failed=$((failed + 1))
	fi
}

run_unit() {
	local t
	for t in "$build"/test/test_*; do
		case "$t" in *.d) continue ;; esac
		[ -x "$t" ] || continue
		run_criterion "$t"
	done
}

run_integration() {
	echo "== integration ($build/spoutd)"
	local out
	# SPOUT_PUB_BIN/SPOUT_SUB_BIN: the command-line clients (test_cli.py).
	SPOUTD="$build/spoutd" SPOUT_BENCH="$build/spout-bench" \
		SPOUT_PUB_BIN="$build/spout-pub" SPOUT_SUB_BIN="$build/spout-sub" \
		python3 test/integration/run.py "$@" | tee "$log_dir/integration-$(basename "$build").log"
	out=$(tail -1 "$log_dir/integration-$(basename "$build").log")
	if [[ "$out" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		passed=$((passed + BASH_REMATCH[1]))
		failed=$((failed + BASH_REMATCH[2]))
	else
		echo "   integration runner did not finish"
		failed=$((failed + 1))
	fi
}

# The fuzz targets' entry points over their seed corpus and every input
# that once crashed (test/fuzz/regressions/<target>/): one pass per target.
run_fuzz_replay() {
	local bin name out
	for bin in "$build"/fuzz-replay/fuzz_*; do
		case "$bin" in *.d) continue ;; esac
		[ -x "$bin" ] || continue
		name=$(basename "$bin")
		echo "== $name (replay, $build)"
		if out=$("$bin" "test/fuzz/corpus/$name" "test/fuzz/regressions/$name" 2>&1); then
			echo "   $(echo "$out" | tail -1)"
			passed=$((passed + 1))
		else
			echo "$out" | tail -30
			failed=$((failed + 1))
		fi
	done
}

case "$what" in
unit) run_unit; run_fuzz_replay ;;
integration) run_integration "$@" ;;
all) run_unit; run_fuzz_replay; run_integration "$@" ;;
tsan)
	# The SPSC ring stress and the wake-up protocol under TSan, then the
	# broker's own threads under load.
	run_criterion "$build/test/test_ring"
	run_integration "$@"
	;;
*) echo "run-tests.sh: unknown suite '$what'" >&2; exit 2 ;;
esac

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
