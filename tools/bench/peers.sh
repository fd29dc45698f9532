#!/usr/bin/env bash
# peers.sh - start, inspect and stop the brokers spoutd is compared with:
# nchan (nginx + Debian's libnginx-mod-nchan) and Pushpin (Debian's 1.36).
# Never as services: every process runs from a run dir of ours, on the ports
# given, and is stopped by PID. Configs and why: tools/bench/README.md.
#
#   peers.sh start   nchan|pushpin RUNDIR HTTP_PORT PUB_PORT [ORIGIN_PORT]
#   peers.sh pids    nchan|pushpin RUNDIR   every PID of the server (tree)
#   peers.sh origin-pids RUNDIR             the GRIP origin (pushpin only)
#   peers.sh stop    nchan|pushpin RUNDIR
#   peers.sh version nchan|pushpin
#
# start  renders the templates into RUNDIR, raises `ulimit -n` to the hard
#        limit, starts the server in the background, waits until it answers
#        (PEERS_START_TIMEOUT seconds, default 20; exit 1 and the logs
#        otherwise), and writes the top PID(s) it started to RUNDIR/pids.
#        nchan:   GET /sub/<topic> (send Accept: text/event-stream) and
#                 POST /pub/<topic>, both on HTTP_PORT; PUB_PORT is ignored.
#        pushpin: GET /stream/<topic> on HTTP_PORT, POST /publish/ on
#                 PUB_PORT; the GRIP origin (grip_origin.py) listens on
#                 ORIGIN_PORT (default HTTP_PORT+2), its PID in
#                 RUNDIR/origin.pid. RUNDIR/ports holds all three.
# pids   the whole process tree of the server, one PID a line: nginx master
#        + workers; pushpin runner + condure + zurl + pushpin-proxy +
#        pushpin-handler. The origin is not in it: it is the app backend
#        (a test fixture), reported apart by origin-pids.
# stop   SIGTERM to the top PIDs it started (the nginx master / the pushpin
#        runner stop their children), then SIGKILL to any process of the
#        tree still there after PEERS_STOP_TIMEOUT seconds (default 10).
#        Never by name.
# PEERS_LOG_LEVEL (pushpin only, default 1 = warnings): 2 = info, 3 = debug.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
start_timeout=${PEERS_START_TIMEOUT:-20}
stop_timeout=${PEERS_STOP_TIMEOUT:-10}

die() { echo "peers.sh: $*" >&2; exit 1; }
usage() { sed -n '6,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

check_peer() {
	case "${1:-}" in
	nchan | pushpin) ;;
	*) usage ;;
	esac
}

# Absolute run dir (it may not exist yet).
absdir() {
	mkdir -p "$1"
	(cd "$1" && pwd)
}

alive() { # PID still there and not a zombie
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# A recorded top PID counts only if its command line still names the run
# dir (a PID reused by an unrelated process after a crash never does).
ours() { # PID RUNDIR
	alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

children() { # direct children of PID
	ps -o pid= --ppid "$1" 2>/dev/null || true
}

tree() { # PID and all its descendants, parents first
	local p c
	p=$1
	alive "$p" || return 0
	echo "$p"
	for c in $(children "$p"); do
		tree "$c"
	done
}

top_pids() { # PEER RUNDIR: the recorded top PIDs that are still ours
	local f=$2/pids p
	[ -f "$f" ] || return 0
	while read -r p; do
		[ -n "$p" ] && ours "$p" "$2" && echo "$p"
	done <"$f"
	return 0
}

origin_pid() { # RUNDIR
	local p
	[ -f "$1/origin.pid" ] || return 0
	p=$(cat "$1/origin.pid")
	[ -n "$p" ] && ours "$p" "$1" && echo "$p"
	return 0
}

cmd_pids() { # PEER RUNDIR
	local rundir p
	rundir=$(cd "$2" 2>/dev/null && pwd) || return 0
	for p in $(top_pids "$1" "$rundir"); do
		tree "$p"
	done
}

cmd_origin_pids() { # RUNDIR
	local rundir p
	rundir=$(cd "$1" 2>/dev/null && pwd) || return 0
	for p in $(origin_pid "$rundir"); do
		tree "$p"
	done
}

# Stop every process in the list: SIGTERM to the first group (the tops),
# wait, SIGKILL to whatever of the second group (the whole trees) remains.
stop_procs() { # "TOPS" "ALL"
	local tops=$1 all=$2 p left i
	[ -n "$all" ] || return 0
	for p in $tops; do kill -TERM "$p" 2>/dev/null || true; done
	for ((i = 0; i < stop_timeout * 10; i++)); do
		left=""
		for p in $all; do alive "$p" && left="$left $p"; done
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	echo "peers.sh: still running after ${stop_timeout}s, SIGKILL:$left" >&2
	for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
	for ((i = 0; i < 50; i++)); do
		left=""
		for p in $all; do alive "$p" && left="$left $p"; done
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	die "could not stop:$left"
}

cmd_stop() { # PEER RUNDIR
	local rundir tops all otop oall
	rundir=$(cd "$2" 2>/dev/null && pwd) || return 0
	tops=$(top_pids "$1" "$rundir")
	all=$(for p in $tops; do tree "$p"; done)
	stop_procs "$tops" "$all"
	otop=$(origin_pid "$rundir")
	oall=$(for p in $otop; do tree "$p"; done)
	stop_procs "$otop" "$oall"
	rm -f "$rundir/pids" "$rundir/origin.pid"
}

cmd_version() { # PEER
	case "$1" in
	nchan)
		nginx -v 2>&1
		echo "libnginx-mod-nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '(not installed)')"
		;;
	pushpin)
		pushpin --version 2>&1 | head -1
		echo "pushpin (deb) $(dpkg-query -W -f='${Version}' pushpin 2>/dev/null || echo '(not installed)')"
		timeout 5 condure --version 2>&1 | head -1
		timeout 5 zurl --version 2>&1 | head -1
		echo "origin: $(python3 --version 2>&1) (tools/bench/grip_origin.py)"
		;;
	esac
}

# Wait until CMD succeeds, bounded; fail loudly with the logs otherwise.
wait_for() { # WHAT RUNDIR CMD...
	local what=$1 rundir=$2 deadline p
	shift 2
	deadline=$((SECONDS + start_timeout))
	until "$@" >/dev/null 2>&1; do
		# shellcheck disable=SC2013 # one PID a line, no spaces
		for p in $(cat "$rundir/pids" "$rundir/origin.pid" 2>/dev/null); do
			alive "$p" || {
				start_failed "$rundir" "$what: process $p exited"
			}
		done
		[ "$SECONDS" -lt "$deadline" ] || start_failed "$rundir" "$what: no answer after ${start_timeout}s"
		sleep 0.1
	done
}

start_failed() { # RUNDIR MESSAGE
	local f
	echo "peers.sh: start failed: $2" >&2
	for f in "$1"/*.log "$1"/*.out "$1"/log/*; do
		[ -s "$f" ] || continue
		echo "--- $f (last lines)" >&2
		tail -15 "$f" >&2
	done
	cmd_stop "$peer" "$1" || true
	exit 1
}

http_code() { # URL [curl args...]: print the status code
	local url=$1
	shift
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url"
}

probe_ok() { # URL: 200
	[ "$(http_code "$1")" = 200 ]
}

probe_stream() { # URL: a held stream whose first bytes are the origin's ":ok"
	local out
	out=$(curl -sN --max-time 2 "$@" 2>/dev/null || true)
	case "$out" in
	:ok* | ": hi"*) return 0 ;;
	esac
	return 1
}

probe_publish() { # URL: the publish API takes an empty item list
	[ "$(http_code "$1" -X POST -H 'Content-Type: application/json' --data '{"items":[]}')" = 200 ]
}

render() { # TEMPLATE OUT sed-expressions...
	local in=$1 out=$2
	shift 2
	sed "$@" "$in" >"$out"
	if grep -n '@[A-Z_]*@' "$out" >&2; then
		die "unrendered placeholder in $out"
	fi
}

start_nchan() { # RUNDIR HTTP_PORT
	local rundir=$1 http=$2 module user_line nofile
	module=""
	for module in /usr/lib/nginx/modules/ngx_nchan_module.so \
		/usr/share/nginx/modules/ngx_nchan_module.so; do
		[ -f "$module" ] && break
	done
	[ -f "$module" ] || die "ngx_nchan_module.so not found (tools/deps.sh bench installs libnginx-mod-nchan)"
	command -v nginx >/dev/null || die "nginx not found (tools/deps.sh bench)"
	if [ "$(id -u)" -eq 0 ]; then
		user_line="user root;"
	else
		user_line="# (not started by root: workers run as the invoking user)"
	fi
	nofile=$(nofile_limit)
	mkdir -p "$rundir/tmp"
	render "$here/nchan/nginx.conf.in" "$rundir/nginx.conf" \
		-e "s|@RUNDIR@|$rundir|g" -e "s|@HTTP_PORT@|$http|g" \
		-e "s|@NCHAN_MODULE@|$module|g" -e "s|@USER_LINE@|$user_line|g" \
		-e "s|worker_rlimit_nofile 20000;|worker_rlimit_nofile $nofile;|" \
		-e "s|worker_connections 20000;|worker_connections $nofile;|"
	nginx -t -q -p "$rundir/" -c "$rundir/nginx.conf" -e "$rundir/error.log" \
		>"$rundir/nginx-test.out" 2>&1 || {
		cat "$rundir/nginx-test.out" >&2
		die "nginx -t failed for $rundir/nginx.conf"
	}
	setsid nginx -p "$rundir/" -c "$rundir/nginx.conf" -e "$rundir/error.log" \
		</dev/null >"$rundir/nginx.out" 2>&1 &
	echo $! >"$rundir/pids"
	printf 'http=%s\npub=%s\n' "$http" "$http" >"$rundir/ports"
	wait_for "nginx /health" "$rundir" probe_ok "http://127.0.0.1:$http/health"
	wait_for "nchan subscriber" "$rundir" probe_stream \
		-H 'Accept: text/event-stream' "http://127.0.0.1:$http/sub/__peers_ready"
}

start_pushpin() { # RUNDIR HTTP_PORT PUB_PORT ORIGIN_PORT
	local rundir=$1 http=$2 pub=$3 origin=$4 f nofile sock
	command -v pushpin >/dev/null || die "pushpin not found (tools/deps.sh bench)"
	command -v python3 >/dev/null || die "python3 not found"
	# ZeroMQ ipc sockets are unix sockets: the path must fit sun_path.
	sock="$rundir/run/pushpin-condure-out-stream"
	[ ${#sock} -le 100 ] || die "RUNDIR too long for ZeroMQ ipc socket paths (${#sock} > 100 bytes): $rundir"
	nofile=$(nofile_limit)
	mkdir -p "$rundir/lib/runner" "$rundir/run" "$rundir/log"
	# libdir: Debian's, with our zurl template (raised limits).
	cp /usr/lib/pushpin/internal.conf "$rundir/lib/"
	for f in /usr/lib/pushpin/runner/*.template; do
		cp "$f" "$rundir/lib/runner/"
	done
	cp "$here/pushpin/zurl.conf.template" "$rundir/lib/runner/"
	render "$here/pushpin/pushpin.conf.in" "$rundir/pushpin.conf" \
		-e "s|@RUNDIR@|$rundir|g" -e "s|@LIBDIR@|$rundir/lib|g" \
		-e "s|@HTTP_PORT@|$http|g" -e "s|@PUB_PORT@|$pub|g" \
		-e "s|^client_maxconn=20000|client_maxconn=$nofile|" \
		-e "s|^log_level=1|log_level=${PEERS_LOG_LEVEL:-1}|"
	render "$here/pushpin/routes.in" "$rundir/routes" -e "s|@ORIGIN_PORT@|$origin|g"
	printf 'http=%s\npub=%s\norigin=%s\n' "$http" "$pub" "$origin" >"$rundir/ports"

	setsid python3 "$here/grip_origin.py" --host 127.0.0.1 --port "$origin" \
		--pidfile "$rundir/origin.pid.tmp" </dev/null >"$rundir/log/origin.out" 2>&1 &
	echo $! >"$rundir/origin.pid"
	wait_for "GRIP origin" "$rundir" probe_ok "http://127.0.0.1:$origin/health"
	rm -f "$rundir/origin.pid.tmp"

	setsid pushpin --config "$rundir/pushpin.conf" \
		</dev/null >"$rundir/log/runner.out" 2>&1 &
	echo $! >"$rundir/pids"
	# Client port -> condure -> pushpin-proxy -> zurl -> origin and back.
	wait_for "pushpin client port" "$rundir" probe_ok "http://127.0.0.1:$http/health"
	wait_for "pushpin publish API" "$rundir" probe_publish "http://127.0.0.1:$pub/publish/"
	# A held GRIP stream: pushpin-handler accepted it.
	wait_for "pushpin stream" "$rundir" probe_stream "http://127.0.0.1:$http/stream/__peers_ready"
}

# The fd limit each server process gets: the hard limit, at most 20,000
# (what the scenarios need; the hard limit on the reference machine).
nofile_limit() {
	local hard
	hard=$(ulimit -Hn)
	if [ "$hard" = unlimited ] || [ "$hard" -gt 20000 ]; then
		echo 20000
	else
		echo "$hard"
	fi
}

cmd_start() { # PEER RUNDIR HTTP_PORT PUB_PORT [ORIGIN_PORT]
	local rundir http=$3 pub=$4 origin=${5:-}
	[[ "$http" =~ ^[0-9]+$ && "$pub" =~ ^[0-9]+$ ]] || usage
	rundir=$(absdir "$2")
	if [ -n "$(top_pids "$1" "$rundir")$(origin_pid "$rundir")" ]; then
		die "$1 already running in $rundir (peers.sh stop $1 $rundir)"
	fi
	rm -f "$rundir/pids" "$rundir/origin.pid"
	# Children inherit the soft limit: raise it to the hard limit.
	ulimit -n "$(ulimit -Hn)"
	case "$1" in
	nchan) start_nchan "$rundir" "$http" ;;
	pushpin)
		[ -n "$origin" ] || origin=$((http + 2))
		[[ "$origin" =~ ^[0-9]+$ ]] || usage
		start_pushpin "$rundir" "$http" "$pub" "$origin"
		;;
	esac
	echo "peers.sh: $1 up in $rundir (pids: $(tr '\n' ' ' <"$rundir/pids"))" >&2
}

cmd=${1:-}
case "$cmd" in
start)
	if [ $# -lt 5 ] || [ $# -gt 6 ]; then usage; fi
	check_peer "$2"
	peer=$2
	cmd_start "$2" "$3" "$4" "$5" "${6:-}"
	;;
pids)
	[ $# -eq 3 ] || usage
	check_peer "$2"
	cmd_pids "$2" "$3"
	;;
origin-pids)
	[ $# -eq 2 ] || usage
	cmd_origin_pids "$2"
	;;
stop)
	[ $# -eq 3 ] || usage
	check_peer "$2"
	peer=$2
	cmd_stop "$2" "$3"
	;;
version)
	[ $# -eq 2 ] || usage
	check_peer "$2"
	cmd_version "$2"
	;;
*) usage ;;
esac
