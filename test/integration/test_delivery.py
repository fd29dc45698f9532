"""Delivery: subscriptions, fan-out, framing, headers, small endpoints."""
import os
import select
import selectors
import subprocess
import time

from harness import (Broker, SSEClient, check, eq, spawn, kill_pid, src_addr,
                     test, wait_for)


def _read_pipe_until(proc, want, timeout):
    """Read proc.stdout until <want> (bytes) appears; bounded."""
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while want not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        b = os.read(fd, 65536)
        if not b:
            break
        buf += b
    return buf


@test
def curl_receives_event():
    with Broker("--retry-ms", "0") as b:
        p = spawn(["curl", "-sN", "--max-time", "10",
                   "http://127.0.0.1:%d/events/news" % b.http_port],
                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            got = _read_pipe_until(p, b":ok\n\n", 5)
            eq(got, b":ok\n\n", "curl output before any event")
            with b.publisher() as pub:
                i = pub.pub("news", "hello")
            rest = b"id: %d\ndata: hello\n\n" % i
            got += _read_pipe_until(p, rest, 5)
            want = b":ok\n\n" + rest
            eq(got, want, "curl output")
        finally:
            kill_pid(p)
            p.stdout.close()


@test
def stream_headers_http11():
    with Broker("--retry-ms", "0") as b:
        with b.sse("/events/hdr") as c:
            h = c.wait_head()
            eq(h.status_line, "HTTP/1.1 200 OK", "status line")
            eq(h.get("content-type"), "text/event-stream", "Content-Type")
            eq(h.get("cache-control"), "no-cache", "Cache-Control")
            eq(h.get("x-accel-buffering"), "no", "X-Accel-Buffering")
            eq(h.get("transfer-encoding", "").lower(), "chunked", "Transfer-Encoding")
            check("content-length" not in h.headers, "stream must not have Content-Length")
            check(h.get("access-control-allow-origin") is None,
                  "no ACAO without --cors-origin, got %r" % h.get("access-control-allow-origin"))
            # the first body bytes are the ":ok" comment, as one chunk
            wait_for(lambda: c.pump() is not None and len(c.body) >= 5, 3, what=":ok comment")
            check(c.body.startswith(b":ok\n\n"), "first body bytes %r, want ':ok\\n\\n'" % c.body[:20])
            check(c.raw_body.startswith(b"5\r\n:ok\n\n\r\n"),
                  "raw first chunk %r" % c.raw_body[:20])
            eq(c.comments[:1], ["ok"], "first comment")
            with b.publisher() as p:
                i = p.pub("hdr", "x")
            ev = c.expect_events(1)[0]
            eq((ev.id, ev.event, ev.data), (str(i), None, "x"), "event")


@test
def stream_http10_raw_body():
    with Broker("--retry-ms", "0") as b:
        c = b.sse("/events/old", http10=True)
        try:
            h = c.wait_head()
            eq(h.status, 200, "status")
            eq(h.get("content-type"), "text/event-stream", "Content-Type")
            eq(h.get("cache-control"), "no-cache", "Cache-Control")
            eq(h.get("x-accel-buffering"), "no", "X-Accel-Buffering")
            check(h.get("transfer-encoding") is None,
                  "HTTP/1.0 response must not be chunked (Transfer-Encoding: %r)"
                  % h.get("transfer-encoding"))
            with b.publisher() as p:
                i = p.pub("old", "v1")
                ev = c.expect_events(1)[0]
                eq((ev.id, ev.data), (str(i), "v1"), "event")
            eq(c.raw_body, b":ok\n\nid: %d\ndata: v1\n\n" % i, "raw body bytes")
        finally:
            c.close()


@test
def retry_field_with_per_connection_jitter():
    """Every stream starts with ':ok' and 'retry: <ms>' where ms lies in
    [retry, 1.5 * retry] and differs between connections."""
    import re
    with Broker("--retry-ms", "2000") as b:
        seen = []
        for k in range(12):
            with b.sse("/events/r%d" % k) as c:
                c.wait_head()
                wait_for(lambda: c.pump() is not None and b"\n\n" in c.body, 3, what="preamble")
                m = re.match(rb":ok\nretry: (\d+)\n\n", c.body)
                check(m is not None, "preamble %r" % c.body[:40])
                ms = int(m.group(1))
                check(2000 <= ms <= 3000, "retry %d outside [2000, 3000]" % ms)
                seen.append(ms)
        check(len(set(seen)) >= 4, "retry values barely vary: %s" % seen)
    with Broker("--retry-ms", "0") as b:
        with b.sse("/events/none") as c:
            c.wait_head()
            wait_for(lambda: c.pump() is not None and b"\n\n" in c.body, 3, what="preamble")
            eq(c.body[:5], b":ok\n\n", "--retry-ms 0 sends no retry field")


@test
def subscription_live_when_head_arrives():
    """An event published right after the head was read must be delivered:
    fresh topics (new SUB round trip), an existing topic, and multi-topic."""
    with Broker() as b, b.publisher() as p:
        keep = b.sse("/events/shared")
        keep.wait_head()
        for n in range(60):
            if n % 3 == 0:
                path, topic = "/events/fresh%d" % n, "fresh%d" % n
            elif n % 3 == 1:
                path, topic = "/events/shared", "shared"
            else:
                path, topic = "/events?topic=m%da&topic=m%db" % (n, n), "m%db" % n
            with b.sse(path) as c:
                c.wait_head()
                i = p.pub(topic, "n%d" % n)
                evs = c.read_events(1, 3)
                check(evs, "iteration %d (%s): event %d published right after the head "
                      "was not delivered" % (n, path, i))
                eq((evs[0].id, evs[0].data), (str(i), "n%d" % n), "iteration %d event" % n)
        keep.close()


@test
def topic_isolation():
    with Broker() as b, b.publisher() as p:
        ca, cb = b.sse("/events/a"), b.sse("/events/b")
        ca.wait_head()
        cb.wait_head()
        ia = p.pub("a", "for-a")
        ib = p.pub("b", "for-b")
        p.pub("a.b", "nested-not-a")
        p.pub("A", "case")
        ia2 = p.pub("a", "sentinel")
        evs = ca.expect_events(2)
        eq([(e.id, e.data) for e in evs], [(str(ia), "for-a"), (str(ia2), "sentinel")],
           "subscriber of a")
        ev = cb.expect_events(1)[0]
        eq((ev.id, ev.data), (str(ib), "for-b"), "subscriber of b")
        cb.expect_no_event(0.3)
        ca.expect_no_event(0.1)
        ca.close()
        cb.close()


@test
def multi_topic_query():
    with Broker() as b, b.publisher() as p:
        c = b.sse("/events?topic=a&topic=b")
        c.wait_head()
        sent = []
        for k in range(10):
            t = "a" if k % 3 else "b"
            sent.append((str(p.pub(t, "%s%d" % (t, k))), "%s%d" % (t, k)))
            p.pub("c", "other%d" % k)
        evs = c.expect_events(10)
        eq([(e.id, e.data) for e in evs], sent, "events in publish order")
        c.expect_no_event(0.3)
        c.close()


@test
def path_and_query_topics():
    with Broker() as b, b.publisher() as p:
        c = b.sse("/events/a?topic=b&other=zz")
        c.wait_head()
        i1 = p.pub("a", "1")
        i2 = p.pub("b", "2")
        p.pub("zz", "no")
        i3 = p.pub("a", "3")
        eq([(e.id, e.data) for e in c.expect_events(3)],
           [(str(i1), "1"), (str(i2), "2"), (str(i3), "3")], "events")
        c.expect_no_event(0.3)
        c.close()


@test
def duplicate_topics_count_once():
    # --max-topics 2: duplicates of a and b must not count against the limit
    with Broker("--max-topics", "2") as b, b.publisher() as p:
        c = b.sse("/events/a?topic=a&topic=b&topic=a&topic=b&topic=b")
        eq(c.wait_head().status, 200, "status with duplicate topics")
        ids = [p.pub("a", "x"), p.pub("b", "y"), p.pub("a", "z")]
        evs = c.expect_events(3)
        eq([e.id for e in evs], [str(i) for i in ids], "each event exactly once")
        c.expect_no_event(0.3)
        c.close()


@test
def percent_encoded_topic():
    with Broker() as b, b.publisher() as p:
        c1 = b.sse("/events/news%2Eworld")
        c2 = b.sse("/events/news%2eworld")
        c3 = b.sse("/events?topic=news%2Eworld")
        for c in (c1, c2, c3):
            eq(c.wait_head().status, 200, "status for %s" % c.path)
        i = p.pub("news.world", "decoded")
        for c in (c1, c2, c3):
            ev = c.expect_events(1)[0]
            eq((ev.id, ev.data), (str(i), "decoded"), c.path)
            c.close()


def _pump_all(sel, clients, until, timeout):
    deadline = time.monotonic() + timeout
    while not until():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        for key, _ in sel.select(min(left, 0.2)):
            key.data.pump()
    return True


@test(timeout=90)
def fanout_500_subscribers_200_events():
    NSUB, NEV = 500, 200
    with Broker() as b:
        sel = selectors.DefaultSelector()
        subs = []
        try:
            for k in range(NSUB):
                c = SSEClient(b.http_port, "/events/fan", src=src_addr(k))
                subs.append(c)
                sel.register(c, selectors.EVENT_READ, c)
            ok = _pump_all(sel, subs, lambda: all(c.head is not None for c in subs), 20)
            check(ok, "only %d/%d heads within 20s" % (sum(c.head is not None for c in subs), NSUB))
            for c in subs:
                eq(c.head.status, 200, "subscriber status")
            with b.publisher() as p:
                ids = p.pub_many([("fan", "ev%03d-%s" % (k, "x" * 40)) for k in range(NEV)])
            eq(ids, list(range(ids[0], ids[0] + NEV)), "publisher ids")
            got = {id(c): [] for c in subs}

            def done():
                for c in subs:
                    got[id(c)].extend(c.take_events())
                return all(len(got[id(c)]) >= NEV for c in subs)
            _pump_all(sel, subs, done, 60)
            for n, c in enumerate(subs):
                evs = got[id(c)]
                check(c.end is None, "subscriber %d stream ended (%s)" % (n, c.end))
                nums = [int(e.id) for e in evs]
                check(all(x < y for x, y in zip(nums, nums[1:])),
                      "subscriber %d: ids not strictly increasing" % n)
                eq(len(evs), NEV, "subscriber %d event count (lost or duplicated)" % n)
                eq(nums, ids, "subscriber %d ids" % n)
                eq(evs[-1].data, "ev%03d-%s" % (NEV - 1, "x" * 40), "subscriber %d last data" % n)
            # nothing extra trickles in
            time.sleep(0.2)
            for c in subs:
                c.pump()
                eq(c.count_ready(), 0, "extra events")
        finally:
            sel.close()
            for c in subs:
                c.close()


@test(timeout=90)
def full_frame_ring_pauses_publishers_without_loss():
    """With a 16-slot router->worker ring, a pipelined burst fills it: the
    router must stop reading the publisher (counted as a stall) and resume,
    never drop; every subscriber gets every event in order."""
    NSUB, NEV = 100, 2000
    with Broker("--ring-size", "16") as b:
        sel = selectors.DefaultSelector()
        subs = []
        try:
            for k in range(NSUB):
                c = SSEClient(b.http_port, "/events/bp", src=src_addr(k))
                subs.append(c)
                sel.register(c, selectors.EVENT_READ, c)
            check(_pump_all(sel, subs, lambda: all(c.head is not None for c in subs), 20),
                  "subscriber heads")
            m0 = b.metrics()
            with b.publisher() as p:
                ids = p.pub_many([("bp", "e%d" % k) for k in range(NEV)], timeout=60)
            eq(len(ids), NEV, "every PUB answered OK")
            got = {id(c): [] for c in subs}

            def done():
                for c in subs:
                    got[id(c)].extend(c.take_events())
                return all(len(got[id(c)]) >= NEV for c in subs)
            _pump_all(sel, subs, done, 60)
            for n, c in enumerate(subs):
                check(c.end is None, "subscriber %d stream ended (%s)" % (n, c.end))
                eq([int(e.id) for e in got[id(c)]], ids, "subscriber %d ids" % n)
            m = b.metrics()
            check(m["spout_router_stalls_total"] > m0["spout_router_stalls_total"],
                  "a 16-slot ring under a %d-event burst never stalled the router" % NEV)
            eq(m["spout_events_dropped_total"], 0, "events dropped")
        finally:
            sel.close()
            for c in subs:
                c.close()


@test
def order_2000_events():
    with Broker() as b:
        c = b.sse("/events/seq")
        c.wait_head()
        with b.publisher() as p:
            ids = p.pub_many([("seq", "n%d" % k) for k in range(2000)])
        eq(ids, list(range(ids[0], ids[0] + 2000)), "consecutive publisher ids")
        evs = c.expect_events(2000, 20)
        eq([int(e.id) for e in evs], ids, "ids in order")
        eq([e.data for e in evs], ["n%d" % k for k in range(2000)], "data in order")
        c.close()


@test
def pub_ids_monotonic_across_topics():
    with Broker() as b:
        with b.publisher() as p:
            first = p.pub("t1", "a")
            eq([first, p.pub("t2", "b"), p.pub("t3.x", "c")], [first, first + 1, first + 2],
               "consecutive ids (no subscribers at all)")
            # ids continue above every earlier run: start time in µs
            now = int(time.time() * 10**6)
            check(now - 10 * 10**6 < first <= now,
                  "first id %d is not based on the start time (now %d µs)" % (first, now))
        with b.publisher() as p2:
            eq(p2.pub("t1", "d"), first + 3, "id on a second publisher connection")
            eq(p2.event("t9", "kind", "e"), first + 4, "EVENT shares the id sequence")


@test
def event_form_multiline():
    with Broker() as b, b.publisher() as p:
        c = b.sse("/events/ev")
        c.wait_head()
        i1 = p.event("ev", "update", b"line1\nline2")
        i2 = p.event("ev", "-", b"crlf1\r\ncrlf2")
        i3 = p.event("ev", "t.x", b"cr1\rcr2\r\nlf3\nend")
        i4 = p.event("ev", "k", b"PUB ev injected\nlast")
        evs = c.expect_events(4)
        eq((evs[0].id, evs[0].event, evs[0].data), (str(i1), "update", "line1\nline2"), "event 1")
        eq((evs[1].id, evs[1].event, evs[1].data), (str(i2), None, "crlf1\ncrlf2"), "event 2")
        eq((evs[2].id, evs[2].event, evs[2].data), (str(i3), "t.x", "cr1\ncr2\nlf3\nend"), "event 3")
        eq((evs[3].id, evs[3].event, evs[3].data), (str(i4), "k", "PUB ev injected\nlast"), "event 4")
        # exact wire form: one data: line per payload line
        raw = c.body.decode()
        check("id: %d\nevent: update\ndata: line1\ndata: line2\n\n" % i1 in raw,
              "wire form of event 1 in %r" % raw)
        check("id: %d\ndata: crlf1\ndata: crlf2\n\n" % i2 in raw, "wire form of event 2 in %r" % raw)
        check("\r" not in raw, "a CR leaked into the stream: %r" % raw)
        c.expect_no_event(0.2)
        c.close()


@test
def heartbeat_comments():
    with Broker("--heartbeat-ms", "200") as b:
        c = b.sse("/events/quiet")
        c.wait_head()
        c.read_events(1, 1.3)
        beats = c.ncomments - 1   # minus ":ok"
        check(beats >= 3, "idle stream got %d heartbeat comments in 1.3s with "
              "--heartbeat-ms 200" % beats)
        check(c.end is None, "stream ended: %s" % c.end)
        c.close()


@test
def cors_headers():
    origin = "https://app.example"
    with Broker("--cors-origin", origin) as b:
        c = b.sse("/events/x", extra_headers="Origin: %s\r\n" % origin)
        h = c.wait_head()
        eq(h.status, 200, "stream status")
        eq(h.get("access-control-allow-origin"), origin, "stream ACAO")
        c.close()
        r = b.http(b"GET /nope HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\r\n")
        eq(r.status, 404, "404 status")
        eq(r.headers.get("access-control-allow-origin"), origin, "404 ACAO")
        r = b.http(b"GET /events/a..b HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(r.status, 400, "400 status")
        eq(r.headers.get("access-control-allow-origin"), origin, "400 ACAO")
        r = b.http(b"OPTIONS /events/x HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n"
                   b"Access-Control-Request-Method: GET\r\n\r\n")
        eq(r.status, 204, "OPTIONS status")
        eq(r.headers.get("access-control-allow-origin"), origin, "OPTIONS ACAO")
        methods = [m.strip() for m in r.headers.get("access-control-allow-methods", "").split(",")]
        check("GET" in methods, "Access-Control-Allow-Methods %r lacks GET" % methods)
        eq(r.body, b"", "204 body")
    with Broker() as b:
        c = b.sse("/events/x", extra_headers="Origin: %s\r\n" % origin)
        h = c.wait_head()
        check("access-control-allow-origin" not in h.headers, "ACAO without --cors-origin")
        c.close()
        r = b.http(b"GET /nope HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\r\n")
        eq(r.status, 404, "404 status")
        check("access-control-allow-origin" not in r.headers, "ACAO on 404 without --cors-origin")


@test
def healthz_and_metrics():
    with Broker() as b:
        r = b.http(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(r.status, 200, "healthz status")
        eq(r.body.strip(), b"ok", "healthz body")
        r = b.http(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(r.status, 200, "metrics status")
        check(r.headers.get("content-type", "").startswith("text/plain"),
              "metrics Content-Type %r" % r.headers.get("content-type"))
        # the baseline: only the scrape's own connection is open (a closed
        # connection may be counted for a moment after the client sees EOF)
        m0 = wait_for(lambda: (lambda m: m if m["spout_connections_open"] <= 1 else None)(
            b.metrics()), 3, what="connections_open <= 1 at rest")
        for k in ("spout_connections_open", "spout_connections_accepted_total",
                  "spout_events_published_total", "spout_frames_delivered_total",
                  "spout_events_dropped_total",
                  'spout_connections_shed_total{reason="overflow"}',
                  'spout_connections_shed_total{reason="write_timeout"}'):
            check(k in m0, "metric %s missing" % k)
        subs = [b.sse("/events/m") for _ in range(3)]
        for c in subs:
            c.wait_head()
        m1 = b.metrics()
        check(m1["spout_connections_open"] >= m0["spout_connections_open"] + 3,
              "connections_open %s -> %s with 3 streams" % (m0["spout_connections_open"],
                                                            m1["spout_connections_open"]))
        check(m1["spout_connections_accepted_total"] >= m0["spout_connections_accepted_total"] + 4,
              "accepted_total did not count the new connections")
        with b.publisher() as p:
            p.pub_many([("m", "d%d" % k) for k in range(10)])
            p.pub("unrouted", "z")
        for c in subs:
            c.expect_events(10)
        m2 = wait_for(lambda: (lambda m: m if m["spout_frames_delivered_total"]
                               >= m1["spout_frames_delivered_total"] + 30 else None)(b.metrics()),
                      3, what="frames_delivered_total +30")
        eq(m2["spout_events_published_total"] - m1["spout_events_published_total"], 11,
           "events_published_total delta")
        eq(m2["spout_frames_delivered_total"] - m1["spout_frames_delivered_total"], 30,
           "frames_delivered_total delta (3 subscribers x 10 events)")
        eq(m2["spout_events_dropped_total"], 0, "events_dropped_total")
        for c in subs:
            c.close()
        wait_for(lambda: b.metrics()["spout_connections_open"] <= m0["spout_connections_open"], 3,
                 what="connections_open back to the baseline")


@test
def head_request_no_body():
    with Broker() as b:
        r = b.http(b"HEAD /events/x HTTP/1.1\r\nHost: x\r\n\r\n", 3)
        eq(r.status, 200, "HEAD status")
        check(r.headers.get("content-type", "").startswith("text/event-stream"),
              "HEAD Content-Type %r" % r.headers.get("content-type"))
        eq(r.body, b"", "HEAD response body")
        check(r.how in ("answered", "closed"), "HEAD: %s" % r.describe())
        # the broker still serves
        with b.sse("/events/x") as c:
            eq(c.wait_head().status, 200, "GET after HEAD")
