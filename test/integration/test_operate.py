"""Operating spout: metrics families move when they should, readyz and the
SIGTERM drain, accept-rate storm control, the reconnect-storm signal, and
the worker count under a cgroup CPU quota."""
import os
import re
import signal
import socket
import subprocess
import time

from harness import (ARTIFACTS, Broker, SSEClient, check, eq, spoutd_path, src_addr, test,
                     wait_for)


def _quiet(b, what="metrics to settle"):
    """Wait until two scrapes agree on deliveries (nothing in flight)."""
    last = [None]

    def same():
        m = b.metrics()
        key = (m["spout_frames_delivered_total"], m["spout_delivery_latency_seconds_count"])
        ok = key == last[0]
        last[0] = key
        return ok
    wait_for(same, 5, interval=0.2, what=what)
    return b.metrics()


@test
def latency_histograms_count_every_live_delivery():
    with Broker("--history", "100") as b:
        subs = [b.sse("/events/lat", src=src_addr(k)) for k in range(20)]
        try:
            for c in subs:
                c.wait_head()
            with b.publisher() as p:
                ids = p.pub_many([("lat", "x%d" % k) for k in range(50)])
            for c in subs:
                eq(len(c.expect_events(50)), 50, "events")
            # a resumed client is not a live delivery: not in the histogram
            with b.sse("/events/lat", extra_headers="Last-Event-ID: %d\r\n" % ids[9]) as r:
                eq(len(r.expect_events(40)), 40, "replayed")
            m = _quiet(b)
            eq(m["spout_frames_delivered_total"], 20 * 50, "live deliveries")
            eq(m["spout_delivery_latency_seconds_count"], 20 * 50,
               "latency histogram count == live deliveries")
            eq(m['spout_delivery_latency_seconds_bucket{le="+Inf"}'], 20 * 50, "+Inf bucket")
            check(0 < m["spout_delivery_latency_seconds_sum"] < 20 * 50 * 5.0,
                  "latency sum %r" % m["spout_delivery_latency_seconds_sum"])
            # buckets are cumulative
            les = sorted((float(k.split('"')[1]), v) for k, v in m.items()
                         if k.startswith("spout_delivery_latency_seconds_bucket") and "+Inf" not in k)
            check(all(a[1] <= b_[1] for a, b_ in zip(les, les[1:])), "buckets not cumulative")
            eq(m["spout_queue_wait_seconds_count"], m["spout_frames_routed_total"],
               "queue-wait histogram counts every routed frame")
            check(m["spout_worker_loop_seconds_count"] > 0, "loop lag histogram moves")
            check(m["spout_out_queue_depth_events_count"] >= 20, "queue depth sampled per flush")
            check(m['spout_out_queue_depth_events_bucket{le="+Inf"}'] ==
                  m["spout_out_queue_depth_events_count"], "depth histogram consistent")
            check(m["spout_process_resident_bytes"] > 1 << 20, "RSS reported")
            check(0 < m["spout_open_fds"] < m["spout_open_files_limit"], "fds vs limit")
        finally:
            for c in subs:
                c.close()


@test
def reconnects_and_close_reasons_are_counted():
    with Broker("--write-timeout-ms", "500") as b:
        m0 = b.metrics()
        with b.publisher() as p:
            last = p.pub("rc", "x")
        for k in range(3):
            with b.sse("/events/rc", extra_headers="Last-Event-ID: %d\r\n" % last) as c:
                c.wait_head()
        with b.sse("/events/rc?lastEventId=%d" % last) as c:
            c.wait_head()
        r = b.http(b"GET /events/a..b HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(r.status, 400, "bad request")
        wait_for(lambda: b.metrics()['spout_connections_closed_total{reason="bad_request"}'] >
                 m0['spout_connections_closed_total{reason="bad_request"}'], 3,
                 what="bad_request close reason")
        m = b.metrics()
        eq(m["spout_reconnects_total"] - m0["spout_reconnects_total"], 4,
           "reconnects (3 headers + 1 query parameter)")
        check(m['spout_connections_closed_total{reason="client"}'] >= 4, "client closes counted")


@test(timeout=90)
def write_timeout_shed_moves_its_reason():
    with Broker("--write-timeout-ms", "500", "--queue", "100000",
                "--queue-bytes", str(1 << 30)) as b:
        slow = SSEClient(b.http_port, "/events/wt", rcvbuf=4096)
        try:
            slow.wait_head()
            m0 = b.metrics()
            with b.publisher() as p:
                for _ in range(400):
                    p.pub_many([("wt", "y" * 1000)] * 50)
                    if b.metrics()["spout_write_eagain_total"] > m0["spout_write_eagain_total"]:
                        break
            wait_for(lambda: b.metrics()['spout_connections_closed_total{reason="write_timeout"}']
                     == m0['spout_connections_closed_total{reason="write_timeout"}'] + 1, 5,
                     what="write-timeout shed")
            m = b.metrics()
            eq(m['spout_connections_shed_total{reason="write_timeout"}'],
               m0['spout_connections_shed_total{reason="write_timeout"}'] + 1, "shed family")
            check(m['spout_event_drops_total{reason="write_timeout"}'] > 0, "drops by reason")
            with open(b.log_path) as f:
                check("reason=write_timeout" in f.read(), "shed logged")
        finally:
            slow.close()


@test(timeout=60)
def sigterm_drain_spreads_closes_and_flips_readyz():
    n, drain_ms = 20, 2000
    with Broker("--drain-ms", str(drain_ms), "--retry-ms", "1000") as b:
        eq(b.http(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").status, 200, "readyz before")
        subs = [b.sse("/events/dr", src=src_addr(k)) for k in range(n)]
        for c in subs:
            c.wait_head()
        t0 = time.monotonic()
        b.send_signal(signal.SIGTERM)
        wait_for(lambda: b.http(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").status == 503, 2,
                 interval=0.05, what="readyz 503 while draining")
        # a new stream during the drain is told to come back later and
        # ended (a 503 would make EventSource give up for good)
        r = b.http(b"GET /events/late HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(r.status, 200, "new stream during the drain")
        eq(r.headers.get("content-type"), "text/event-stream", "its Content-Type")
        check(re.fullmatch(rb":draining\nretry: \d+\n\n", r.body) is not None,
              "its body %r" % r.body)
        eq(b.metrics()["spout_draining"], 1, "draining gauge")
        ends = {}
        deadline = t0 + drain_ms / 1000 + 3
        while len(ends) < n and time.monotonic() < deadline:
            for k, c in enumerate(subs):
                if k not in ends:
                    c.pump()
                    if c.end is not None:
                        ends[k] = time.monotonic() - t0
            time.sleep(0.01)
        eq(len(ends), n, "every stream closed within drain-ms + 3 s")
        times = sorted(ends.values())
        check(times[0] < 0.8, "first close after %.2fs" % times[0])
        check(times[-1] > 1.2, "last close after %.2fs: not spread over %d ms" % (times[-1], drain_ms))
        spread = [t for t in times if t < 1.0]
        check(3 <= len(spread) <= n - 3, "closes not spread evenly: %s" % ["%.2f" % t for t in times])
        for k, c in enumerate(subs):
            check(re.search(rb"retry: \d+\n\n", c.body[-80:]) is not None,
                  "stream %d not told retry: before its end (%r)" % (k, c.body[-80:]))
            eq(c.end, "clean", "stream %d ended with the terminating chunk" % k)
        rc, secs = b.stop(timeout=5)
        eq(rc, 0, "exit status after the drain")


@test(timeout=30)
def second_signal_stops_the_drain_at_once():
    with Broker("--drain-ms", "20000") as b:
        subs = [b.sse("/events/ss", src=src_addr(k)) for k in range(5)]
        for c in subs:
            c.wait_head()
        b.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        t0 = time.monotonic()
        rc, _ = b.stop(sig=signal.SIGINT, timeout=5)
        eq(rc, 0, "exit status")
        check(time.monotonic() - t0 < 3, "second signal did not stop at once")
        for c in subs:
            c.close()


@test(timeout=30)
def accept_rate_cap_answers_503_with_jittered_retry_after():
    with Broker("--max-accept-rate", "5") as b:
        # The harness's start-up probes (port, /readyz) took tokens from
        # the 5-token bucket: let it refill so the burst starts full.
        time.sleep(1.2)
        got = []
        for k in range(40):
            r = b.http(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", src=src_addr(k))
            got.append(r)
        ok = [r for r in got if r.status == 200]
        busy = [r for r in got if r.status == 503]
        check(4 <= len(ok) <= 12, "%d of 40 admitted at 5/s" % len(ok))
        eq(len(ok) + len(busy), 40, "every connection answered")
        afters = {int(r.headers["retry-after"]) for r in busy}
        check(afters <= {1, 2, 3, 4, 5} and len(afters) >= 2,
              "Retry-After values %s should be jittered within 1..5" % sorted(afters))

        def scrape():     # the scrape's own connection is rate-limited too
            try:
                return b.metrics()
            except AssertionError:
                return None
        m = wait_for(scrape, 5, interval=0.3, what="a scrape within the rate")
        check(m['spout_connections_rejected_total{reason="accept_rate"}'] >= len(busy),
              "rejections counted")


@test(timeout=60)
def reconnect_storm_is_signalled():
    with Broker("--storm-threshold", "5") as b:
        with b.publisher() as p:
            last = p.pub("st", "x")
        end = time.monotonic() + 3
        k = 0
        while time.monotonic() < end:
            with SSEClient(b.http_port, "/events/st", src=src_addr(k),
                           extra_headers="Last-Event-ID: %d\r\n" % last) as c:
                c.wait_head()
            k += 1
        wait_for(lambda: b.metrics()["spout_reconnect_storm"] == 1, 5, interval=0.2,
                 what="storm gauge")
        check(b.metrics()["spout_reconnect_rate"] > 5, "reconnect rate gauge")
        with open(b.log_path) as f:
            check('msg="reconnect storm"' in f.read(), "storm logged")
        wait_for(lambda: b.metrics()["spout_reconnect_storm"] == 0, 15, interval=0.5,
                 what="storm to end once reconnects stop")


def _cgroup_cpu_dir():
    """A writable cgroup CPU controller (v2 or v1), or (None, reason)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        try:
            with open("/sys/fs/cgroup/cgroup.subtree_control") as f:
                if "cpu" not in f.read().split():
                    return None, "cgroup v2 without the cpu controller enabled for children"
        except OSError as e:
            return None, "cgroup v2 subtree_control unreadable: %s" % e
        return "/sys/fs/cgroup", "v2"
    if os.path.isdir("/sys/fs/cgroup/cpu") and os.access("/sys/fs/cgroup/cpu", os.W_OK):
        return "/sys/fs/cgroup/cpu", "v1"
    return None, "no writable cgroup cpu controller under /sys/fs/cgroup"


@test(timeout=30)
def cgroup_cpu_quota_sets_worker_count():
    base, kind = _cgroup_cpu_dir()
    if base is None:
        print("SKIP cgroup_cpu_quota_sets_worker_count: %s" % kind)
        return
    path = os.path.join(base, "spout-test-%d" % os.getpid())
    os.mkdir(path)
    try:
        if kind == "v2":
            with open(os.path.join(path, "cpu.max"), "w") as f:
                f.write("100000 100000")
        else:
            with open(os.path.join(path, "cpu.cfs_period_us"), "w") as f:
                f.write("100000")
            with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as f:
                f.write("100000")
        http, pub = socket.socket(), socket.socket()
        http.bind(("127.0.0.1", 0))
        pub.bind(("127.0.0.1", 0))
        hp, pp = http.getsockname()[1], pub.getsockname()[1]
        http.close()
        pub.close()
        log = open(os.path.join(ARTIFACTS, "cgroup-quota.log"), "wb")
        # join the cgroup first, then become spoutd: the quota applies from
        # the first instruction
        proc = subprocess.Popen(
            ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', path, spoutd_path(),
             "--http", "127.0.0.1:%d" % hp, "--pub", "127.0.0.1:%d" % pp, "--drain-ms", "0"],
            stdout=log, stderr=log)
        try:
            def started():
                with open(log.name, "rb") as f:
                    return b"spoutd started" in f.read()
            wait_for(started, 5, what="spoutd to start in the cgroup")
            with open(log.name, "rb") as f:
                line = [l for l in f.read().splitlines() if b"spoutd started" in l][0]
            check(b" workers=1 " in line, "a 1-CPU quota should give 1 worker: %r" % line)
        finally:
            proc.send_signal(signal.SIGTERM)
            eq(proc.wait(10), 0, "exit status")
            log.close()
    finally:
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.1)


@test
def topic_metrics_are_opt_in_and_bounded():
    with Broker("--topic-metrics", "orders.>", "--topic-metrics-max", "2") as b:
        with b.publisher() as p:
            p.pub_many([("orders.a", "x")] * 3 + [("orders.b", "x")] + [("orders.c", "x")] * 2 +
                       [("news", "x")] * 5)
        m = b.metrics()
        eq(m['spout_topic_events_published_total{topic="orders.a"}'], 3, "orders.a")
        eq(m['spout_topic_events_published_total{topic="orders.b"}'], 1, "orders.b")
        check('spout_topic_events_published_total{topic="orders.c"}' not in m,
              "a third topic past --topic-metrics-max 2 has no series")
        eq(m["spout_topic_metrics_overflow_total"], 2, "its publishes count as overflow")
        check(not any('topic="news"' in k for k in m), "non-matching topics have no series")
    with Broker() as b:
        check(not any(k.startswith("spout_topic_events_published_total") for k in b.metrics()),
              "no per-topic series unless asked for")


def _spawn_in_cgroup(cgdir, ports, *flags, log=subprocess.DEVNULL):
    """Start spoutd inside <cgdir>: the shell joins the cgroup, then execs."""
    return subprocess.Popen(
        ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgdir, spoutd_path(),
         "--http", "127.0.0.1:%d" % ports[0], "--pub", "127.0.0.1:%d" % ports[1],
         "--drain-ms", "0"] + list(flags), stdout=log, stderr=log)


def _get(port, path):
    from harness import raw_http
    try:
        return raw_http(port, ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode(), 2)
    except OSError:
        return None


@test(timeout=60)
def memory_guard_refuses_connections_near_the_cgroup_limit():
    """With a cgroup memory limit set on a PARENT cgroup: below
    --memory-high-pct of it spoutd serves and sizes its history budget to
    1/8 of the limit; above it, new connections get 503 (reason=memory).
    The limit is sized from what this build of spoutd is really charged
    (sanitizer builds use many times more), so the guard trips without the
    OOM killer acting."""
    base = None
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        reason = "cgroup v2: memory guard test needs a v1 memory hierarchy or delegation"
    elif os.access("/sys/fs/cgroup/memory", os.W_OK):
        base = "/sys/fs/cgroup/memory"
    else:
        reason = "no writable cgroup memory controller"
    if base is None:
        print("SKIP memory_guard_refuses_connections_near_the_cgroup_limit: %s" % reason)
        return
    parent = os.path.join(base, "spout-mem-%d" % os.getpid())
    child = os.path.join(parent, "child")
    os.mkdir(parent)
    try:
        os.mkdir(child)
        hp, pp = socket.socket(), socket.socket()
        hp.bind(("127.0.0.1", 0))
        pp.bind(("127.0.0.1", 0))
        ports = (hp.getsockname()[1], pp.getsockname()[1])
        hp.close()
        pp.close()

        def run(limit, pct, check_fn):
            with open(os.path.join(parent, "memory.limit_in_bytes"), "w") as f:
                f.write(str(limit))
            log = open(os.path.join(ARTIFACTS, "cgroup-memory-%d.log" % pct), "wb")
            proc = _spawn_in_cgroup(child, ports, "--memory-high-pct", str(pct), log=log)
            try:
                wait_for(lambda: _get(ports[0], "/healthz") is not None, 5, what="spoutd up")
                return check_fn()
            finally:
                proc.send_signal(signal.SIGTERM)
                eq(proc.wait(15), 0, "exit status (killed by the OOM killer?)")
                log.close()

        # 1. measure: a generous limit, guard off (100 %)
        def measure():
            time.sleep(0.5)
            with open(os.path.join(child, "memory.usage_in_bytes")) as f:
                return int(f.read())
        used = run(4 << 30, 100, measure)
        limit = max(8 << 20, used * 4)
        # 2. below the threshold (100 % of 4x use): serves, budget = limit / 8
        def below():
            r = wait_for(lambda: (lambda r: r if r and r.status == 200 else None)(
                _get(ports[0], "/metrics")), 5, what="a scrape below the threshold")
            text = r.body.decode()
            check("spout_cgroup_memory_limit_bytes %d\n" % limit in text,
                  "the parent's limit %d is found" % limit)
            want = min(64 << 20, limit // 8)
            check("spout_history_budget_bytes %d\n" % want in text,
                  "history budget %d (1/8 of the limit, at most 64 MiB)" % want)
        run(limit, 100, below)
        # 3. above it: 10 % of 4x use is below what spoutd is charged
        def above():
            r = wait_for(lambda: (lambda r: r if r and r.status == 503 else None)(
                _get(ports[0], "/events/m")), 5, interval=0.2,
                what="503 for a new connection above the memory threshold")
            check(b"memory" in r.body, "reason in the body: %r" % r.body)
            check(1 <= int(r.headers["retry-after"]) <= 5, "jittered Retry-After")
        run(limit, 10, above)
    finally:
        for d in (child, parent):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.1)
