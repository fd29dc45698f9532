#!/usr/bin/env python3
"""bench_cluster.py - what cluster mode (--redis) costs against a single node.

Two figures, each measured on a single spoutd (no --redis: ids assigned
locally, no Redis hop) and on a 2-node cluster sharing one redis-server,
with the publisher on node 1 and the subscribers on node 2, so that every
event goes node 1 -> Redis (Lua: id, XADD, PUBLISH; OK after that) ->
Redis pub/sub -> node 2 -> SSE:

  latency     publish-to-receive latency (p50, p99) measured by
              build/spout-bench: 1000 subscribers @ 200 events/s and
              100 subscribers @ 1000 events/s, one topic, 128-byte events
  publish     events/s acknowledged (OK) on one node's line-protocol port by
              spout-bench's pipelined publisher (-r 0, --window 1000),
              with no subscribers and with 10 subscribers; Redis'
              INFO commandstats around the cluster run says where its
              time per publish goes

Every node runs with --overflow drop-oldest: nothing fills in the latency
runs, but no reader keeps up with a single node's maximum publish rate, and
with the default policy the subscribers would be shed at once.

Every repetition starts redis-server, the two cluster nodes and the single
node afresh, and runs each measurement on the single node and on the
cluster back to back (interleaved, so a noisy moment hurts both; which goes
first alternates between repetitions). Medians over the
repetitions, with min-max. Server CPU (utime + stime from /proc) of every
process is sampled around each run, so the table says who was busy.

Everything runs on this machine: the load tool, Redis and the nodes share
its cores, which inflates the cluster figures (one more process, and two
more loopback hops, competing for the same CPUs).

Usage: bench_cluster.py [--build build] [--reps 3] [--quick]
                        [--md docs/benchmarks.md] [--out build/bench/cluster.json]

The section of --md between the bench_cluster markers is replaced (the
markers are appended at the end of the file if missing); --quick (one
repetition, shorter runs) writes to <build>/bench/cluster-quick.md instead
unless --md is given. Only processes started here are signalled, by PID.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from benchlib import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HZ = os.sysconf("SC_CLK_TCK")
SRC = "127.0.0.2-127.0.0.60"
BEGIN, END = "<!-- bench_cluster:begin -->", "<!-- bench_cluster:end -->"

LATENCY = [(1000, 200), (100, 1000)]   # (subscribers, events/s)
PUBLISH_SUBS = [0, 10]                 # subscribers during the publish-rate runs
WINDOW = 1000                          # PUBs in flight without a reply


# ---------------------------------------------------------------- processes

def cpu_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ
    except (OSError, IndexError, ValueError):
        return 0.0


class Proc:
    """One child process, its output in a log file; stopped by PID only."""

    def __init__(self, name, argv, logdir):
        self.name, self.argv = name, argv
        self.log_path = os.path.join(logdir, name + ".log")
        with open(self.log_path, "ab") as log:
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      cwd=logdir)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def tail(self, n=10):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(5)


def redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_commandstats(port):
    """{command: (calls, usec)} from INFO commandstats (commands run by
    scripts are counted too, under their own names)."""
    out = {}
    with socket.create_connection(("127.0.0.1", port), 2) as s:
        s.sendall(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
        buf, need = b"", None
        while need is None or len(buf) < need:
            b = s.recv(65536)
            if not b:
                break
            buf += b
            if need is None and b"\r\n" in buf:      # "$<length>\r\n<text>\r\n"
                head = buf.index(b"\r\n")
                need = head + 2 + int(buf[1:head]) + 2
    for line in buf.decode("utf-8", "replace").splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[8:].split(":", 1)
            kv = dict(x.split("=", 1) for x in rest.split(","))
            out[name] = (int(kv["calls"]), int(kv["usec"]))
    return out


def http_status(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=1) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def wait_until(what, fn, proc, secs=10.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if fn():
            return
        if not proc.alive():
            raise RuntimeError("%s exited during start-up:\n%s" % (proc.name, proc.tail()))
        time.sleep(0.05)
    raise RuntimeError("%s not up within %.0f s:\n%s" % (what, secs, proc.tail()))


class Setup:
    """mode "single": one spoutd. mode "cluster": redis-server + 2 spoutd
    nodes with --redis; publish on node 1, subscribe on node 2."""

    def __init__(self, a, mode, tag, logdir):
        self.a, self.mode, self.tag, self.logdir = a, mode, tag, logdir
        self.procs = []

    def node(self, name, extra):
        http, pub = free_port(), free_port()
        p = Proc(name, [self.a.spoutd, "--http", "127.0.0.1:%d" % http,
                        "--pub", "127.0.0.1:%d" % pub, "--drain-ms", "0",
                        "--overflow", "drop-oldest", "--log-level", "warn"] + extra,
                 self.logdir)
        self.procs.append(p)
        wait_until("%s /readyz 200" % name, lambda: http_status(http, "/readyz") == 200, p)
        return http, pub

    def __enter__(self):
        try:
            if self.mode == "single":
                self.sub_http, self.pub = self.node("single-%s" % self.tag, [])
            else:
                rport = self.redis_port = free_port()
                rdir = os.path.join(self.logdir, "redis-%s" % self.tag)
                os.makedirs(rdir, exist_ok=True)
                r = Proc("redis-%s" % self.tag,
                         [self.a.redis_server, "--port", str(rport), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--daemonize", "no",
                          "--dir", rdir], self.logdir)
                self.procs.append(r)
                wait_until("redis-server PING", lambda: redis_ping(rport), r)
                flags = ["--redis", "127.0.0.1:%d" % rport,
                         "--redis-prefix", "bench%s" % self.tag]
                _h1, self.pub = self.node("node1-%s" % self.tag, flags)
                self.sub_http, _p2 = self.node("node2-%s" % self.tag, flags)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            p.stop()
        return False

    def argv(self):
        def word(x):
            if x.startswith(self.logdir):
                return '"$(mktemp -d)"'
            return os.path.relpath(x, ROOT) if x.startswith(ROOT) else (x or "''")
        return [" ".join(word(x) for x in p.argv) for p in self.procs]

    def cpu(self):
        return {p.name.split("-")[0]: cpu_of(p.pid) for p in self.procs}

    def check_alive(self):
        for p in self.procs:
            if not p.alive():
                raise RuntimeError("%s died:\n%s" % (p.name, p.tail()))


# ---------------------------------------------------------------- load tool

def bench(a, setup, prefix, args, seconds):
    cmd = [a.bench, "--http", "127.0.0.1:%d" % setup.sub_http,
           "--pub", "127.0.0.1:%d" % setup.pub, "--src-addrs", SRC, "-t", "1",
           "--topic-prefix", prefix, "-d", str(seconds), "--drain-ms", "1000",
           "--json", "--max-seconds", str(int(seconds) + 40)] + args
    cpu0 = setup.cpu()
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    wall = time.monotonic() - t0
    cpu1 = setup.cpu()
    setup.check_alive()
    try:
        r = json.loads(out.stdout)
    except ValueError:
        raise RuntimeError("spout-bench failed (exit %d): %s\n%s" % (
            out.returncode, " ".join(cmd), out.stderr[-2000:]))
    if out.returncode not in (0,):
        raise RuntimeError("spout-bench exit %d: %s\n%s" % (out.returncode, " ".join(cmd),
                                                           out.stderr[-2000:]))
    r["stderr"] = out.stderr.strip()[-500:]
    r["server_cpu_share"] = {k: (cpu1[k] - cpu0[k]) / wall for k in cpu0}
    r["cmd"] = " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd)
    return r


def acked_per_s(r):
    return r["pub_ok"] / r["publish_s"] if r["publish_s"] > 0 else 0.0


# ---------------------------------------------------------------- report

def med(vals):
    return statistics.median(vals), min(vals), max(vals)


def fmt(m, digits=2):
    md, lo, hi = m
    f = "%%.%df" % digits
    if len(set(round(x, digits) for x in m)) == 1:
        return f % md
    return (f + " (" + f + "–" + f + ")") % (md, lo, hi)


def fmt_signed(m):
    md, lo, hi = m
    if round(lo, 2) == round(hi, 2):
        return "%+.2f" % md
    return "%+.2f (%+.2f – %+.2f)" % (md, lo, hi)


def fmt_rate(m):
    md, lo, hi = m
    if round(lo) == round(hi):
        return "{:,.0f}".format(md)
    return "{:,.0f} ({:,.0f}–{:,.0f})".format(md, lo, hi)


def cpu_str(reps, key):
    """Median CPU share of each server process over the repetitions."""
    names = reps[0][key]["server_cpu_share"].keys()
    return ", ".join("%s %.2f" % (n, statistics.median(r[key]["server_cpu_share"][n]
                                                      for r in reps)) for n in names)


def versions(a):
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                                  cwd=ROOT).stdout.strip()
        except OSError:
            return "?"
    rev = run(["git", "rev-parse", "--short", "HEAD"]) or "?"
    dirty = run(["git", "status", "--porcelain", "--", "src", "include", "tools/spout-bench"])
    return {
        "spoutd": "%s (commit %s%s)" % (run([a.spoutd, "--version"]), rev,
                                        "; the working tree had uncommitted changes in "
                                        "src/" if dirty else ""),
        "redis": run([a.redis_server, "--version"]),
    }


def summarize(a, reps, vers, started, took):
    lines = []
    w = lines.append
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / 1048576
    w(BEGIN)
    w("")
    w("## Cluster mode: the cost of the Redis hop")
    w("")
    w("`tools/bench_cluster.py` (part of `make bench`) measures the same load on")
    w("one spoutd without `--redis` (*single*: ids assigned locally, no Redis")
    w("hop) and on a 2-node cluster sharing one redis-server (*cluster*): the")
    w("publisher talks to node 1 and the subscribers to node 2, so every event")
    w("goes node 1 → Redis (Lua script: id, stream, PUBLISH; `OK` only after")
    w("that) → Redis pub/sub → node 2 → SSE. Reproduce with:")
    w("")
    w("```sh")
    w("python3 tools/bench_cluster.py%s" % (" --quick" if a.quick else ""))
    w("```")
    w("")
    w("Generated %s UTC in %.0f s (%s).%s" % (
        started, took, "--quick: 1 repetition, shorter runs" if a.quick else
        "%d repetitions" % a.reps,
        " **Quick run: indicative only.**" if a.quick else ""))
    w("")
    w("- machine: %d CPUs, %.0f GiB RAM, Linux %s; everything on loopback" % (
        os.cpu_count(), mem, platform.release()))
    w("- spoutd: %s, defaults (each node: %d workers) plus `--drain-ms 0` and "
      "`--overflow drop-oldest`: no queue fills in the latency runs, but in the "
      "publish-rate runs with subscribers no reader keeps up with a single node's "
      "rate, and with the default policy its subscribers would be shed at once "
      "(leaving nothing to fan out); with drop-oldest they stay connected and lose "
      "events, and the node keeps fanning out" % (vers["spoutd"], os.cpu_count()))
    w("- Redis: %s, `--save '' --appendonly no` (no persistence)" % vers["redis"])
    w("- **one %d-core VM for everything**: in the cluster runs the load tool, " % os.cpu_count() +
      "redis-server and both nodes share the same cores, so the cluster figures include "
      "their competition for CPU (and two more loopback hops) and are an upper bound on "
      "the Redis hop's cost; on separate hosts add the network round trips instead")
    w("- every figure: median of %d repetition%s, (min–max) when they differ; each "
      "repetition starts every process afresh and runs each measurement on both, "
      "alternating which goes first" % (
          len(reps), "" if len(reps) == 1 else "s"))
    w("")
    w("Publish-to-receive latency (spout-bench: one topic, 128-byte events, "
      "%g s of publishing per run; the tool timestamps each PUB and each delivery):" % a.lat_s)
    w("")
    w("*cluster − single* is the median of the per-repetition differences (the two "
      "runs of a repetition are back to back), so it is not the difference of the "
      "two medians beside it.")
    w("")
    w("| load | | single | cluster | cluster − single | lost (single / cluster) |")
    w("|---|---|---:|---:|---:|---|")
    for subs, rate in LATENCY:
        key = "lat-%d-%d" % (subs, rate)
        for q in ("p50_ms", "p99_ms"):
            s = med([r[key]["single"][q] for r in reps])
            c = med([r[key]["cluster"][q] for r in reps])
            lost = "%d / %d" % (sum(r[key]["single"]["lost"] for r in reps),
                                sum(r[key]["cluster"]["lost"] for r in reps))
            d = med([r[key]["cluster"][q] - r[key]["single"][q] for r in reps])
            w("| %d subs @ %d ev/s | %s ms | %s | %s | **%s** | %s |" % (
                subs, rate, q[:3], fmt(s), fmt(c), fmt_signed(d),
                lost if q == "p50_ms" else ""))
    w("")
    w("Publish rate one node sustains: events/s acknowledged (`OK`) on one "
      "publisher connection, pipelined (`-r 0 --window %d`), %g s per run:" % (WINDOW, a.pub_s))
    w("")
    w("| subscribers | single | cluster (publish on node 1) | cluster / single "
      "| lost: dropped by drop-oldest (single / cluster) |")
    w("|---|---:|---:|---:|---|")
    for subs in PUBLISH_SUBS:
        key = "pub-%d" % subs
        s = med([acked_per_s(r[key]["single"]) for r in reps])
        c = med([acked_per_s(r[key]["cluster"]) for r in reps])
        lost = "%d / %d" % (statistics.median(r[key]["single"]["lost"] for r in reps),
                            statistics.median(r[key]["cluster"]["lost"] for r in reps))
        w("| %s | %s | %s | %.3f | %s |" % (
            "none" if subs == 0 else "%d (on node 2 in the cluster)" % subs,
            fmt_rate(s), fmt_rate(c), c[0] / s[0] if s[0] else 0,
            "" if subs == 0 else lost + " (median)"))
    stats = [r["pub-0"]["cluster"].get("redis_commandstats") for r in reps]
    stats = [x for x in stats if x and x.get("evalsha", (0, 0))[0]]
    if stats:
        def per_pub(name):
            return statistics.median(x.get(name, (0, 0))[1] / x["evalsha"][0] for x in stats)
        inner = sorted((k for k in stats[0] if k not in ("evalsha", "info", "evalsha_ro")),
                       key=per_pub, reverse=True)
        shown = [k for k in inner[:8] if per_pub(k) >= 0.05]
        w("")
        w("Where Redis spends its time in the cluster publish-rate run without subscribers "
          "(`INFO commandstats` before and after, median over repetitions): %.1f µs per "
          "publish (`EVALSHA`, the whole script), of which the commands it calls take %s; "
          "the other %.1f µs are the Lua interpreter and the script's own work. One "
          "redis-server runs every node's scripts one at a time, so this ceiling is the "
          "whole cluster's, not one node's." % (
              per_pub("evalsha"), ", ".join("`%s` %.1f" % (k.upper(), per_pub(k))
                                            for k in shown),
              per_pub("evalsha") - sum(per_pub(k) for k in inner)))
    w("")
    w("Server CPU during the runs (cores busy, median; `node1` publishes, `node2` "
      "delivers, `redis` is redis-server) and the load tool's own share:")
    w("")
    w("| run | single | cluster | tool (single / cluster) |")
    w("|---|---|---|---|")
    keys = [("lat-%d-%d" % (s, r), "%d subs @ %d ev/s" % (s, r)) for s, r in LATENCY] + \
        [("pub-%d" % s, "publish rate, %d subs" % s) for s in PUBLISH_SUBS]
    for key, label in keys:
        single = [r[key]["single"] for r in reps]
        cluster = [r[key]["cluster"] for r in reps]
        w("| %s | %s | %s | %.2f / %.2f |" % (
            label, cpu_str([{"x": x} for x in single], "x"),
            cpu_str([{"x": x} for x in cluster], "x"),
            statistics.median(x["cpu_share"] for x in single),
            statistics.median(x["cpu_share"] for x in cluster)))
    errs = sum(x["pub_errors"] for r in reps for k in r if k != "servers" for x in r[k].values())
    unacked = sum(x["unacked"] for r in reps for k in r if k != "servers" for x in r[k].values())
    # drop-oldest loses events on purpose in the publish-rate runs with
    # subscribers; everywhere else nothing may be lost
    trouble = sum(x["failed"] + x["dropped"] + x["duplicated"] + x["out_of_order"] +
                  (0 if k.startswith("pub-") and x["subscribers"] > 0 else x["lost"])
                  for r in reps for k in r if k != "servers" for x in r[k].values())
    w("")
    w("Over all runs: %d `ERR` replies, %d publishes left without a reply; %d events "
      "lost, duplicated or out of order, or subscribers failed or dropped (the losses "
      "drop-oldest makes on purpose, above, excluded)." % (errs, unacked, trouble))
    w("")
    w("The commands (first repetition; ports are free ones picked at each start):")
    w("")
    w("```sh")
    for mode in ("single", "cluster"):
        w("# %s: servers, each started once /readyz (or PING) of the previous one answers"
          % mode)
        for cmd in reps[0]["servers"][mode]:
            w(cmd + " &")
    for key, label in keys:
        for mode in ("single", "cluster"):
            w("# %s, %s" % (label, mode))
            w(reps[0][key][mode]["cmd"])
    w("```")
    w("")
    w(END)
    return "\n".join(lines) + "\n"


def write_md(path, section):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--spoutd", help="default <build>/spoutd")
    ap.add_argument("--bench", help="default <build>/spout-bench")
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or
                    "/usr/bin/redis-server")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 repetition, shorter runs")
    ap.add_argument("--md", help="markdown file whose bench_cluster section is replaced "
                    "(default docs/benchmarks.md; --quick: <build>/bench/cluster-quick.md); "
                    "'-' = none")
    ap.add_argument("--out", help="raw results, JSON (default <build>/bench/cluster.json)")
    a = ap.parse_args()
    a.spoutd = os.path.abspath(a.spoutd or os.path.join(a.build, "spoutd"))
    a.bench = os.path.abspath(a.bench or os.path.join(a.build, "spout-bench"))
    if a.quick:
        a.reps = 1
    a.lat_s = 2.0 if a.quick else 7.0
    a.pub_s = 1.5 if a.quick else 3.0
    if a.md is None:
        a.md = (os.path.join(a.build, "bench", "cluster-quick.md") if a.quick
                else os.path.join(ROOT, "docs", "benchmarks.md"))
    a.out = a.out or os.path.join(a.build, "bench", "cluster.json")
    for exe in (a.spoutd, a.bench, a.redis_server):
        if not os.access(exe, os.X_OK):
            sys.exit("bench_cluster: %s missing (make; apt-get install redis-server)" % exe)

    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    t_start = time.monotonic()
    vers = versions(a)
    print("bench_cluster: %s; %s" % (vers["spoutd"], vers["redis"]), flush=True)
    logdir = tempfile.mkdtemp(prefix="spout-bench-cluster-")
    reps = []
    ok = False
    try:
        for rep in range(a.reps):
            res = {}
            tag = "%d%d" % (os.getpid(), rep)
            with Setup(a, "single", "s" + tag, logdir) as single, \
                    Setup(a, "cluster", "c" + tag, logdir) as cluster:
                setups = (("single", single), ("cluster", cluster))
                if rep % 2:     # alternate which goes first
                    setups = setups[::-1]
                res["servers"] = {"single": single.argv(), "cluster": cluster.argv()}
                for subs, rate in LATENCY:
                    key = "lat-%d-%d" % (subs, rate)
                    res[key] = {}
                    for mode, s in setups:
                        r = bench(a, s, "l%s%s%d" % (mode[0], tag, subs),
                                  ["-s", str(subs), "-r", str(rate)], a.lat_s)
                        res[key][mode] = r
                        print("rep %d %-7s %4d subs @ %4d ev/s: p50 %6.2f ms  p99 %6.2f ms  "
                              "lost %d  err %d  tool cpu %.2f" % (
                                  rep, mode, subs, rate, r["p50_ms"], r["p99_ms"], r["lost"],
                                  r["pub_errors"], r["cpu_share"]), flush=True)
                for subs in PUBLISH_SUBS:
                    key = "pub-%d" % subs
                    res[key] = {}
                    for mode, s in setups:
                        if mode == "cluster":
                            cs0 = redis_commandstats(s.redis_port)
                        r = bench(a, s, "p%s%s%d" % (mode[0], tag, subs),
                                  ["-s", str(subs), "-r", "0", "--window", str(WINDOW)],
                                  a.pub_s)
                        if mode == "cluster":
                            cs1 = redis_commandstats(s.redis_port)
                            r["redis_commandstats"] = {
                                k: (v[0] - cs0.get(k, (0, 0))[0], v[1] - cs0.get(k, (0, 0))[1])
                                for k, v in cs1.items()}
                        res[key][mode] = r
                        print("rep %d %-7s publish, %2d subs: %10.0f acked/s  err %d  "
                              "unacked %d  lost %d  dropped %d  cpu %s" % (
                                  rep, mode, subs, acked_per_s(r), r["pub_errors"],
                                  r["unacked"], r["lost"], r["dropped"],
                                  " ".join("%s=%.2f" % kv
                                           for kv in r["server_cpu_share"].items())),
                              flush=True)
            reps.append(res)
        ok = True
    finally:
        if not ok:
            print("bench_cluster: logs kept in %s" % logdir, file=sys.stderr)
        else:
            shutil.rmtree(logdir, ignore_errors=True)
    took = time.monotonic() - t_start
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"versions": vers, "started": started, "seconds": took, "reps": reps}, f,
                  indent=1)
    section = summarize(a, reps, vers, started, took)
    if a.md != "-":
        write_md(a.md, section)
    print(section)
    print("bench_cluster: %.0f s; raw results %s%s" % (
        took, a.out, "" if a.md == "-" else "; table in %s" % a.md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
