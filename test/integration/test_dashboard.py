"""The live dashboard (issue 8): GET /dashboard in headless Chromium while
real subscribers and a publisher load the broker. The page must draw
updates arriving over SSE from spoutd itself, its numbers must move with
the load (connections, deliveries per second, latency), every chart must
be drawn, nothing may break the page's content policy, and a screenshot is
kept as test/artifacts/dashboard.png. The JSON stream is also checked on
its own, without a browser."""
import json
import os
import threading
import time

from harness import ARTIFACTS, Broker, check, eq, raw_http, test
from noderun import NodeRun, require


def _stats_events(b, n, timeout=10):
    """The first <n> snapshots of GET /dashboard/events, parsed."""
    c = b.sse("/dashboard/events")
    eq(c.wait_head().status, 200, "stats stream head")
    evs = c.expect_events(n, timeout=timeout)
    c.close()
    for e in evs:
        eq(e.type, "stats", "event type")
    return [json.loads(e.data) for e in evs]


@test(timeout=60)
def stats_stream_counts_what_happens():
    with Broker() as b:
        subs = [b.sse("/events/dash") for _ in range(5)]
        for s in subs:
            s.wait_head()
        stop = threading.Event()

        def publish():
            with b.publisher() as p:
                while not stop.is_set():
                    p.pub("dash", "x" * 100)
                    time.sleep(0.01)
        t = threading.Thread(target=publish, daemon=True)
        t.start()
        try:
            snaps = _stats_events(b, 4)
        finally:
            stop.set()
            t.join(5)
        last = snaps[-1]
        check(last["conns"] >= 6, "5 streams + the stats stream: %r" % last["conns"])
        eq(last["publishers"], 1, "one publisher")
        eq(last["topics"], 1, "one topic")
        check(max(s["deliveries_per_s"] for s in snaps[1:]) > 100,
              "about 500 deliveries/s: %r" % [s["deliveries_per_s"] for s in snaps])
        check(max(s["published_per_s"] for s in snaps[1:]) > 20, "about 100 published/s")
        check(max(s["latency_ms"]["p99"] for s in snaps[1:]) > 0, "latency measured")
        eq(len(last["workers"]), len(last["workers"]), "workers listed")
        eq(sum(w["conns"] for w in last["workers"]), last["conns"], "per-worker conns add up")
        check(snaps[0]["t"] <= snaps[-1]["t"], "timestamps in order")
        for s in subs:
            s.close()
        r = b.http(b"GET /dashboard HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(r.status, 200, "page")
        check(r.headers.get("content-type", "").startswith("text/html"), r.describe())
        check("default-src 'none'" in r.headers.get("content-security-policy", ""), "CSP")
        check(b"dashboard/events" in r.body, "the page subscribes to its stream")
    with Broker("--dashboard=no") as b:
        r = b.http(b"GET /dashboard HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(r.status, 404, "--dashboard no")
        check(b"--dashboard=no" in r.body, r.describe())


@test(timeout=90)
def dashboard_in_chromium_moves_with_the_load():
    shot = os.path.join(ARTIFACTS, "dashboard.png")
    with Broker("--workers", "2") as b:
        subs = [b.sse("/events/load.%d" % (i % 3)) for i in range(30)]
        for s in subs:
            s.wait_head()
        stop = threading.Event()

        def publish():
            with b.publisher() as p:
                i = 0
                while not stop.is_set():
                    p.pub("load.%d" % (i % 3), "event %d" % i)
                    i += 1
                    time.sleep(0.005)

        def churn():   # some connections come and go, a few requests fail
            while not stop.is_set():
                raw_http(b.http_port, b"GET /events/bad..topic HTTP/1.1\r\nHost: x\r\n\r\n",
                         timeout=2)
                time.sleep(0.3)
        threads = [threading.Thread(target=f, daemon=True) for f in (publish, churn)]
        for t in threads:
            t.start()
        require(browser=True)
        try:
            with NodeRun("dashboard.mjs", ["--spout-port", b.http_port, "--updates", "6",
                                           "--timeout", "40000", "--screenshot", shot]) as r:
                rc, done = r.finish(60)
                eq(rc, 0, "dashboard.mjs exit status (%r)\n%s" % (done, r.describe()))
        finally:
            stop.set()
            for t in threads:
                t.join(5)
        hist = done["history"]
        check(len(hist) >= 6, "six or more snapshots drawn: %d" % len(hist))
        check(max(h["deliveries_per_s"] for h in hist) > 500,
              "deliveries per second moved: %r" % [h["deliveries_per_s"] for h in hist])
        check(min(h["conns"] for h in hist) >= 31, "30 streams + the page's own stream")
        check(len(set(h["t"] for h in hist)) >= 3, "the numbers are live, not one snapshot")
        check(max(h["latency_ms"]["p99"] for h in hist) > 0, "latency drawn")
        for cid, px in done["inked"].items():
            check(px > 500, "chart %s drawn (%d pixels inked)" % (cid, px))
        eq(done["state"], "ready", "state line")
        check(any(t.lower().endswith("connections") for t in done["tiles"]), "tiles: %r" % done["tiles"])
        bad = [l for l in r.kinds("console") if l.get("level") in ("error", "pageerror")]
        eq(bad, [], "no console errors (a CSP violation would be one)")
        check(os.path.getsize(shot) > 10000, "screenshot saved: %s" % shot)
        for s in subs:
            s.close()
