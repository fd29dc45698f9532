#!/usr/bin/env bash
# deps.sh - install what spout needs on Debian 12, and nothing when it is all
# there already (a dpkg query per package, no network).
#
#   tools/deps.sh run     build + run the broker
#   tools/deps.sh test    also what `make test` needs (curl, python3, ...)
#   tools/deps.sh bench   also what `make bench` needs
set -euo pipefail

profile=${1:-run}

build_pkgs=(gcc make pkg-config libjemalloc-dev libxxhash-dev libhttp-parser-dev liburing-dev netcat-openbsd)
test_pkgs=(libcriterion-dev curl python3 procps iproute2)
bench_pkgs=(libck-dev gnuplot-nox)

pkgs=("${build_pkgs[@]}")
case "$profile" in
run) ;;
test) pkgs+=("${test_pkgs[@]}") ;;
bench) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
*) echo "deps.sh: unknown profile '$profile' (run|test|bench)" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo="sudo"
	else
		echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
# Update the package lists only when an install fails for want of them.
if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/spout-deps.log 2>&1; then
	$sudo apt-get update -q >>/tmp/spout-deps.log 2>&1
	$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/spout-deps.log 2>&1 || {
		tail -20 /tmp/spout-deps.log >&2
		echo "deps.sh: apt-get install failed (log: /tmp/spout-deps.log)" >&2
		exit 1
	}
fi
