#!/usr/bin/env python3
"""bench_resume.py - the cost of history and of pattern matching, measured
against a real spoutd (make bench runs it; see docs/benchmarks.md).

  history: publish E events of 128 bytes over T topics with --history big
           enough to keep them all; report RSS growth and the broker's own
           accounting (spout_history_bytes) per retained event.
  patterns: hold P pattern subscriptions open (64 per connection), then
           publish as fast as spout-bench's pipelined publisher can, and
           report events/s routed, against the same run with no patterns.

Usage: bench_resume.py --spoutd build/spoutd --bench build/spout-bench
Every step is bounded in time; brokers are stopped by PID.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from benchlib import free_port


class Spoutd:
    def __init__(self, binary, *args):
        self.http, self.pub = free_port(), free_port()
        self.proc = subprocess.Popen(
            [binary, "--http", "127.0.0.1:%d" % self.http, "--pub", "127.0.0.1:%d" % self.pub,
             "--log-level", "warn"] + list(args), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.pub), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("spoutd did not start")

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def metric(self, name):
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.http, timeout=5).read()
        m = re.search(r"^%s (\S+)$" % re.escape(name), body.decode(), re.M)
        return float(m.group(1))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def publish(port, items, batch=2000):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    for k in range(0, len(items), batch):
        s.sendall(b"".join(b"PUB %s %s\n" % (t.encode(), d) for t, d in items[k:k + batch]))
        for _ in items[k:k + batch]:
            if not f.readline().startswith(b"OK "):
                raise SystemExit("publish failed")
    s.close()


def history_cost(binary, events, topics):
    b = Spoutd(binary, "--history", str(events), "--history-bytes", str(8 << 30),
               "--history-ttl", "0")
    try:
        time.sleep(0.3)
        rss0 = b.rss_kb()
        payload = b"x" * 128
        publish(b.pub, [("hist.%d" % (k % topics), payload) for k in range(events)])
        time.sleep(0.5)
        rss1 = b.rss_kb()
        kept = b.metric("spout_history_events")
        acct = b.metric("spout_history_bytes")
        return {"events": int(kept), "rss_bytes_per_event": (rss1 - rss0) * 1024 / kept,
                "accounted_bytes_per_event": acct / kept}
    finally:
        b.stop()


def routed_per_s(binary, bench, patterns, seconds):
    b = Spoutd(binary, "--max-topics", "64", "--history", "0")
    conns = []
    try:
        for c in range(0, patterns, 64):
            names = ["tenant%d.orders.*.created" % k if k % 2 else "metrics.host%d.>" % k
                     for k in range(c, min(c + 64, patterns))]
            s = socket.create_connection(("127.0.0.1", b.http))
            s.sendall(("GET /events?%s HTTP/1.1\r\nHost: x\r\n\r\n"
                       % "&".join("topic=" + n.replace(">", "%3E") for n in names)).encode())
            s.settimeout(10)
            if not s.recv(64).startswith(b"HTTP/1.1 200"):
                raise SystemExit("pattern subscription refused")
            conns.append(s)
        out = subprocess.run([bench, "--http", "127.0.0.1:%d" % b.http,
                              "--pub", "127.0.0.1:%d" % b.pub, "-s", "1", "-t", "100",
                              # tenant1.orders.<n>: walks three trie levels
                              # (tenant1, orders, '*') before it fails to match
                              "--topic-prefix", "tenant1.orders",
                              "-r", "0", "--window", "2000", "-d", str(seconds),
                              "--max-seconds", str(seconds + 30), "--json"],
                             capture_output=True, text=True, timeout=seconds + 60)
        r = json.loads(out.stdout)
        routed = b.metric("spout_events_published_total")
        return {"patterns": patterns, "published_per_s": r["published"] / seconds,
                "published": int(routed)}
    finally:
        for s in conns:
            s.close()
        b.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spoutd", default="build/spoutd")
    ap.add_argument("--bench", default="build/spout-bench")
    ap.add_argument("--events", type=int, default=1000000)
    ap.add_argument("--topics", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=5)
    a = ap.parse_args()
    h = history_cost(a.spoutd, a.events, a.topics)
    print("history: %d events retained over %d topics, 128-byte payloads: "
          "%.0f bytes/event of RSS, %.0f bytes/event accounted (--history-bytes)"
          % (h["events"], a.topics, h["rss_bytes_per_event"], h["accounted_bytes_per_event"]))
    for n in (0, 10000):
        r = routed_per_s(a.spoutd, a.bench, n, a.seconds)
        print("patterns: %6d registered: %.0f events/s published and routed"
              % (n, r["published_per_s"]))


if __name__ == "__main__":
    sys.exit(main())
