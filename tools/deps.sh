#!/usr/bin/env bash
# deps.sh - install what spout needs on Debian 12, and nothing when it is all
# there already (a dpkg query per package, no network).
#
#   tools/deps.sh run     build + run the broker
#   tools/deps.sh test    also what `make test` needs (curl, python3, ...,
#                         and for the real-client tests: node + npm, Debian's
#                         chromium, then `npm ci` in test/clients)
#   tools/deps.sh bench   also what `make bench` needs, including the peers
#                         spout is compared with (tools/bench/): nginx with
#                         Debian's nchan module, and Pushpin (+ condure and
#                         zurl). Their services are never started by the
#                         install: tools/bench/peers.sh runs them.
set -euo pipefail

profile=${1:-run}

build_pkgs=(gcc make pkg-config libjemalloc-dev libxxhash-dev libhttp-parser-dev liburing-dev libhiredis-dev libjwt-dev libjansson-dev netcat-openbsd)
# redis-server and haproxy: the cluster tests (test/integration/test_cluster.py)
# run real ones on loopback ports, never the system services.
# iptables and libnetfilter-queue-dev: the chaos test (test_chaos.py) impairs a
# namespace's link with netem, or where the kernel has no netem with NFQUEUE
# rules feeding build/netdelay (tools/netdelay/, built when the library is here).
test_pkgs=(libcriterion-dev curl python3 procps iproute2 openssl clang libclang-rt-14-dev cppcheck clang-tidy redis-server haproxy iptables libnetfilter-queue-dev)
# ---- command-line clients (issue 8) ----
# man-db (man, and groff to render): test_cli.py checks that docs/man/*.1
# render without warnings (`man --warnings -l`).
test_pkgs+=(man-db)
# ---- end command-line clients ----
bench_pkgs=(libck-dev gnuplot-nox)
# The comparison peers. libnginx-mod-nchan needs Debian's `nginx` itself (it
# depends on nginx-abi-1.22.1-7, which only `nginx` provides; nginx-light is
# a metapackage on top of it). pushpin depends on "condure | mongrel2-core":
# condure and zurl are named so the runners tools/bench expects are there.
peer_pkgs=(nginx libnginx-mod-nchan pushpin condure zurl python3)
# Packages whose install (or postinst reload) touches a system service: nginx
# on port 80, pushpin on 7999, zurl, redis on 6379, haproxy.
service_pkgs=(nginx nginx-common libnginx-mod-nchan pushpin condure zurl redis-server haproxy)

pkgs=("${build_pkgs[@]}")
case "$profile" in
run) ;;
test) pkgs+=("${test_pkgs[@]}") ;;
bench) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}" "${peer_pkgs[@]}") ;;
*) echo "deps.sh: unknown profile '$profile' (run|test|bench)" >&2; exit 2 ;;
esac

# Real-client tests (test/clients, test/integration/test_clients.py): a node
# and npm already on PATH (say a newer Node.js from elsewhere) are kept, not
# replaced by Debian's; Debian's chromium unless /usr/bin/chromium exists.
if [ "$profile" != run ]; then
	command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
	command -v npm >/dev/null 2>&1 || pkgs+=(npm)
	[ -x /usr/bin/chromium ] || pkgs+=(chromium)
fi

# `npm ci` in test/clients when node_modules is missing or older than the
# lock file (no network when it is up to date). No install scripts: no
# browser download, playwright-core drives /usr/bin/chromium.
clients_deps() {
	[ "$profile" != run ] || return 0
	local dir
	dir="$(cd "$(dirname "$0")/.." && pwd)/test/clients"
	[ -f "$dir/package-lock.json" ] || return 0
	local stamp="$dir/node_modules/.package-lock.json"
	if [ -f "$stamp" ] && [ ! "$dir/package-lock.json" -nt "$stamp" ] &&
		[ ! "$dir/package.json" -nt "$stamp" ]; then
		return 0
	fi
	echo "deps.sh: npm ci in test/clients" >&2
	(cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts \
		--no-audit --no-fund >/tmp/spout-npm.log 2>&1) || {
		tail -20 /tmp/spout-npm.log >&2
		echo "deps.sh: npm ci failed (log: /tmp/spout-npm.log)" >&2
		exit 1
	}
}

missing=()
for p in "${pkgs[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && { clients_deps; exit 0; }

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

# No service may start because of this install (Debian starts nginx on port
# 80, pushpin and zurl as daemons): while apt runs, /usr/sbin/policy-rc.d
# answers 101 ("action forbidden") to invoke-rc.d. An existing policy-rc.d
# that already forbids starting nginx is left alone; any other is set aside
# and put back afterwards, as is the absence of one.
policy=/usr/sbin/policy-rc.d
policy_saved=""
policy_ours=0
restore_policy() {
	[ "$policy_ours" -eq 1 ] || return 0
	$sudo rm -f "$policy"
	if [ -n "$policy_saved" ]; then
		$sudo mv "$policy_saved" "$policy"
	fi
	policy_ours=0
}
guard_services() {
	local p s need=0
	for p in "${missing[@]}"; do
		for s in "${service_pkgs[@]}"; do
			[ "$p" = "$s" ] && need=1
		done
	done
	[ "$need" -eq 1 ] || return 0
	if [ -e "$policy" ]; then
		local rc=0
		"$policy" nginx start >/dev/null 2>&1 || rc=$?
		[ "$rc" -eq 101 ] && return 0
		policy_saved="$policy.spout-saved.$$"
		$sudo mv "$policy" "$policy_saved"
	fi
	trap restore_policy EXIT
	printf '#!/bin/sh\n# tools/deps.sh: no service starts during this install\nexit 101\n' |
		$sudo tee "$policy" >/dev/null
	$sudo chmod 755 "$policy"
	policy_ours=1
}
guard_services
# Update the package lists only when an install fails for want of them.
if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/spout-deps.log 2>&1; then
	$sudo apt-get update -q >>/tmp/spout-deps.log 2>&1
	$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/spout-deps.log 2>&1 || {
		tail -20 /tmp/spout-deps.log >&2
		echo "deps.sh: apt-get install failed (log: /tmp/spout-deps.log)" >&2
		exit 1
	}
fi
restore_policy
clients_deps
