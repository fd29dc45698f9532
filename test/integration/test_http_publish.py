"""HTTP publish (issue 8): POST /publish/<topic> with --http-publish, driven
by real curl where a user would use it. Ids come from the same sequence as
the line protocol's, the publisher token and limits apply, every refusal
has a status and a reason, and in cluster mode a POST on one node reaches
subscribers on another."""
import json
import os
import subprocess
import tempfile
import time

from cluster import Cluster
from harness import Broker, check, eq, raw_http, run_spoutd, test, wait_for

TOKEN = "http-pub-token-0123"


def curl(b, path, data, *args, port=None):
    """POST with curl; returns (status, headers dict, body str)."""
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data if isinstance(data, bytes) else data.encode())
        body_file = f.name
    try:
        p = subprocess.run(["curl", "-sS", "-D", "-", "-o", "-", "--max-time", "10",
                            "--data-binary", "@" + body_file] + list(args) +
                           ["http://127.0.0.1:%d%s" % (port or b.http_port, path)],
                           capture_output=True, timeout=20)
    finally:
        os.unlink(body_file)
    out = p.stdout.decode("utf-8", "replace")
    # skip interim 100 Continue heads
    while out.startswith("HTTP/1.1 100"):
        out = out.split("\r\n\r\n", 1)[1]
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else None
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def post(b, path, body=b"", headers="", **kw):
    if isinstance(body, str):
        body = body.encode()
    raw = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n"
           % (path, len(body), headers)).encode() + body
    return b.http(raw, **kw)


@test
def post_publishes_with_the_line_protocols_ids():
    with Broker("--http-publish") as b:
        c = b.sse("/events?topic=news&topic=alerts")
        eq(c.wait_head().status, 200, "head")
        with b.publisher() as p:
            i1 = p.pub("news", "from the line protocol")
        st, h, body = curl(b, "/publish/news", "line one\nline two")
        eq(st, 201, "created: %s" % body)
        doc = json.loads(body)
        i2 = int(doc["id"])
        eq(doc["topic"], "news", "topic in the answer")
        eq(h.get("spout-event-id"), str(i2), "Spout-Event-Id header")
        st, _, body = curl(b, "/publish/alerts?event=fire", "hot")
        eq(st, 201, body)
        i3 = int(json.loads(body)["id"])
        st, _, body = curl(b, "/publish/alerts", "cold", "-H", "Spout-Event: ice")
        eq(st, 201, body)
        i4 = int(json.loads(body)["id"])
        with b.publisher() as p:
            i5 = p.pub("news", "line again")
        check(i1 < i2 < i3 < i4 < i5, "one id sequence: %r" % [i1, i2, i3, i4, i5])
        evs = c.expect_events(5)
        eq([(int(e.id), e.type, e.data) for e in evs],
           [(i1, "message", "from the line protocol"), (i2, "message", "line one\nline two"),
            (i3, "fire", "hot"), (i4, "ice", "cold"), (i5, "message", "line again")],
           "delivered in id order with types and multi-line data")
        # a body over 1 KiB: curl sends Expect: 100-continue and waits for it
        big = "x" * 5000
        t0 = time.monotonic()
        st, _, body = curl(b, "/publish/news", big)
        eq(st, 201, body)
        check(time.monotonic() - t0 < 0.9, "100 Continue answered (curl waits 1 s without it)")
        eq(c.expect_events(1)[0].data, big, "5000-byte body")
        # an empty body is an empty event
        st, _, body = curl(b, "/publish/news", "")
        eq(st, 201, body)
        eq(c.expect_events(1)[0].data, "", "empty data")
        c.close()
        m = b.metrics()
        eq(m["spout_http_publishes_total"], 5, "counted")
        eq(m["spout_events_published_total"], 7, "with the line protocol's")


@test
def refusals_have_status_and_reason():
    with Broker("--http-publish", "--max-payload", "100") as b:
        cases = [
            (post(b, "/publish/a..b", "x"), 400, b"empty topic segment"),
            (post(b, "/publish/orders.*", "x"), 400, b"invalid character"),
            (post(b, "/publish/a%zz", "x"), 400, b"malformed percent-encoding"),
            (post(b, "/publish/a?event=two%20words", "x"), 400, b"invalid event type"),
            (post(b, "/publish/a", "x" * 101), 413, b"payload too large"),
            (b.http(b"POST /publish/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"1\r\nx\r\n0\r\n\r\n"), 411, b"Content-Length required"),
            (b.http(b"GET /publish/a HTTP/1.1\r\nHost: x\r\n\r\n"), 405, b"POST"),
            (post(b, "/publish/a", "x", "Expect: magic\r\n"), 417, b"100-continue"),
        ]
        for r, status, why in cases:
            eq(r.status, status, r.describe())
            check(why in r.body, "%r in %r" % (why, r.body))
        eq(post(b, "/publish/a", "x" * 100).status, 201, "exactly --max-payload is fine")
        r = b.http(b"OPTIONS /publish/a HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(r.status, 204, "CORS preflight")
        check("POST" in r.headers.get("access-control-allow-methods", ""), r.describe())
    with Broker() as b:
        r = post(b, "/publish/a", "x")
        eq(r.status, 404, "off by default")
        check(b"--http-publish" in r.body, r.describe())


@test
def publisher_token_and_rate_limit_apply():
    with Broker("--http-publish", "--pub-token", TOKEN, "--pub-max-rate", "5") as b:
        r = post(b, "/publish/a", "x")
        eq(r.status, 401, "no token")
        check(b"publisher token required" in r.body, r.describe())
        check("Bearer" in r.headers.get("www-authenticate", ""), "challenge")
        r = post(b, "/publish/a", "x", "Authorization: Bearer wrong\r\n")
        eq(r.status, 401, "wrong token")
        check(b"publisher token wrong" in r.body, r.describe())
        auth = "Authorization: Bearer %s\r\n" % TOKEN
        statuses = [post(b, "/publish/a", "e%d" % i, auth).status for i in range(12)]
        ok, limited = statuses.count(201), statuses.count(429)
        eq(ok + limited, 12, "every POST answered 201 or 429: %r" % statuses)
        check(5 <= ok <= 8 and limited >= 4, "a burst of about --pub-max-rate: %r" % statuses)
        r = post(b, "/publish/a", "x", auth)
        if r.status == 429:
            eq(r.headers.get("retry-after"), "1", "Retry-After on 429")
            check(b"rate limit" in r.body, r.describe())
        m = b.metrics()
        eq(m["spout_publisher_auth_failures_total"], 1, "the wrong token counted")
        check(m['spout_limit_rejections_total{limit="pub_rate"}'] >= limited, "rate counted")
        # the per-address bucket: another client address has its own
        r = post(b, "/publish/a", "x", auth, src="127.0.0.9")
        eq(r.status, 201, "another address: %s" % r.describe())


@test
def slow_bodies_timeouts_and_abandoned_requests():
    with Broker("--http-publish", "--header-timeout-ms", "800") as b:
        c = b.sse("/events/t")
        c.wait_head()
        body = b"in three pieces"
        head = b"POST /publish/t HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        r = raw_http(b.http_port, None, chunks=[head, body[:5], body[5:10], body[10:]],
                     chunk_delay=0.1, timeout=5)
        eq(r.status, 201, "body in pieces: %s" % r.describe())
        eq(c.expect_events(1)[0].data, body.decode(), "assembled")
        r = raw_http(b.http_port, head + body[:4], timeout=5)
        eq(r.status, 408, "a body that never completes: %s" % r.describe())
        c.expect_no_event(0.3)
        base = b.nfds()
        for _ in range(20):   # clients that leave before the answer
            raw_http(b.http_port, head + body, timeout=0.001)
        wait_for(lambda: b.nfds() == base, 5, what="fds back to the baseline")
        c.close()


@test(timeout=30)
def idempotency_key_publishes_once():
    with Broker("--http-publish", "--publish-dedup-s", "2") as b:
        c = b.sse("/events?topic=t&topic=u")
        c.wait_head()
        r1 = post(b, "/publish/t?id=order-17", "first")
        eq(r1.status, 201, r1.describe())
        first = json.loads(r1.body)["id"]
        r2 = post(b, "/publish/t?id=order-17", "retry with other data")
        eq(r2.status, 200, "a retry: %s" % r2.describe())
        doc = json.loads(r2.body)
        eq((doc["id"], doc.get("duplicate")), (first, True), "the first id, marked duplicate")
        eq(r2.headers.get("spout-event-id"), first, "header too")
        r3 = post(b, "/publish/t", "x", "Idempotency-Key: order-17\r\n")
        eq((r3.status, json.loads(r3.body)["id"]), (200, first), "the header form is the same key")
        r4 = post(b, "/publish/u?id=order-17", "other topic")
        eq(r4.status, 201, "the same key on another topic is another event")
        evs = c.expect_events(2)
        eq([(e.id, e.data) for e in evs], [(first, "first"), (json.loads(r4.body)["id"], "other topic")],
           "one event per key and topic")
        c.expect_no_event(0.3)
        time.sleep(2.2)   # --publish-dedup-s 2: the key is forgotten
        r5 = post(b, "/publish/t?id=order-17", "again")
        eq(r5.status, 201, "after the window: %s" % r5.describe())
        check(int(json.loads(r5.body)["id"]) > int(first), "a new id")
        for bad in ("/publish/t?id=two%20words", "/publish/t?id=" + "k" * 129, "/publish/t?id="):
            r = post(b, bad, "x")
            eq(r.status, 400, "%s: %s" % (bad, r.describe()))
            check(b"idempotency key" in r.body, r.describe())
        eq(b.metric("spout_http_publishes_total"), 3, "duplicates are not publishes")
        c.close()
    with Broker("--http-publish", "--publish-dedup-s", "0") as b:
        r = post(b, "/publish/t?id=k", "x")
        eq(r.status, 400, "keys off: %s" % r.describe())
        check(b"--publish-dedup-s 0" in r.body, r.describe())


@test
def http_publish_refused_off_loopback_without_a_token():
    rc, _, err = run_spoutd(["--http", "0.0.0.0:0", "--http-publish"])
    eq(rc, 2, "exit status")
    check("http-publish" in err and "--pub-token" in err, err)


@test(timeout=60)
def cluster_post_on_one_node_reaches_the_others():
    with Cluster("--http-publish", nodes=2, lb=False) as cl:
        c = cl.nodes[1].sse("/events/x")
        eq(c.wait_head().status, 200, "head on node 2")
        r = post(cl.nodes[0], "/publish/x", "across")
        eq(r.status, 201, r.describe())
        i = int(json.loads(r.body)["id"])
        ev = c.expect_events(1)[0]
        eq((int(ev.id), ev.data), (i, "across"), "node 2 got node 1's POST with its id")
        # a retry with the same key through another node: Redis knows it
        r1 = post(cl.nodes[0], "/publish/x?id=k-9", "once")
        eq(r1.status, 201, r1.describe())
        r2 = post(cl.nodes[1], "/publish/x", "twice?", "Idempotency-Key: k-9\r\n")
        eq(r2.status, 200, "retry on node 2: %s" % r2.describe())
        eq(json.loads(r2.body)["id"], json.loads(r1.body)["id"], "the same id")
        eq([e.data for e in c.expect_events(1)], ["once"], "one event")
        c.expect_no_event(0.3)
        cl.redis.stop()
        r = post(cl.nodes[0], "/publish/x", "lost?")
        eq(r.status, 503, "Redis down: %s" % r.describe())
        check(b"backplane" in r.body, r.describe())
        c.close()
