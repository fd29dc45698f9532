"""Bad input on the HTTP port: every malformed request gets its status with
a short text/plain reason, the connection is closed, and the broker keeps
serving."""
import os
import time

from harness import Broker, assert_serving, check, eq, raw_http, test, wait_for


def expect_error(r, status, what):
    if r.status != status:
        raise AssertionError("%s: want %d, got %s" % (what, status, r.describe()))
    ctype = r.headers.get("content-type", "")
    check(ctype.startswith("text/plain"), "%s: Content-Type %r, want text/plain" % (what, ctype))
    check(0 < len(r.body) <= 256, "%s: want a short reason body, got %r" % (what, r.body[:300]))
    cl = r.headers.get("content-length")
    check(cl is not None and int(cl) == len(r.body),
          "%s: Content-Length %r but body is %d bytes" % (what, cl, len(r.body)))
    check(r.end in ("closed", "reset"), "%s: connection not closed after the error (%s)"
          % (what, r.end))


def _target(n):
    return "/events/" + "a" * n


def _big_head():
    pad = "".join("X-Pad-%03d: %s\r\n" % (k, "v" * 100) for k in range(85))
    return ("GET /events/x HTTP/1.1\r\nHost: x\r\n" + pad + "\r\n").encode()


# (name, request bytes, expected status, broker flags)
CASES = [
    ("garbage_bytes", b"\x00\x01\xfe\xff garbage\r\n\r\n", 400, ()),
    ("garbage_words", b"hello there\r\n\r\n", 400, ()),
    ("lowercase_method", b"get /events/x HTTP/1.1\r\nHost: x\r\n\r\n", 400, ()),
    ("no_target", b"GET HTTP/1.1\r\nHost: x\r\n\r\n", 400, ()),
    ("bad_version", b"GET /events/x HXXP/1.1\r\nHost: x\r\n\r\n", 400, ()),
    ("header_without_colon", b"GET /events/x HTTP/1.1\r\nHost x\r\n\r\n", 400, ()),
    ("http11_without_host", b"GET /events/x HTTP/1.1\r\n\r\n", 400, ()),
    ("topic_empty_segment", b"GET /events/a..b HTTP/1.1\r\nHost: x\r\n\r\n", 400, ()),
    ("topic_space", b"GET /events/a%20b HTTP/1.1\r\nHost: x\r\n\r\n", 400, ()),
    ("topic_too_long", ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % _target(129)).encode(), 400, ()),
    ("topic_bad_percent", b"GET /events/a%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, ()),
    ("topic_truncated_percent", b"GET /events/ab%2 HTTP/1.1\r\nHost: x\r\n\r\n", 400, ()),
    ("topic_in_query_invalid", b"GET /events?topic=ok&topic=a..b HTTP/1.1\r\nHost: x\r\n\r\n",
     400, ()),
    ("no_topic", b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n", 400, ()),
    ("no_topic_query", b"GET /events?other=1 HTTP/1.1\r\nHost: x\r\n\r\n", 400, ()),
    ("too_many_topics_default", ("GET /events?%s HTTP/1.1\r\nHost: x\r\n\r\n"
                                 % "&".join("topic=t%d" % k for k in range(17))).encode(), 400, ()),
    ("too_many_topics_flag", b"GET /events/a?topic=b&topic=c&topic=d HTTP/1.1\r\nHost: x\r\n\r\n",
     400, ("--max-topics", "3")),
    ("unknown_path", b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, ()),
    ("unknown_path_prefix", b"GET /eventsx/a HTTP/1.1\r\nHost: x\r\n\r\n", 404, ()),
    ("post_events", b"POST /events/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, ()),
    ("target_too_long", ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % _target(4200)).encode(), 414, ()),
    ("head_too_large", _big_head(), 431, ()),
    ("head_too_large_unfinished", _big_head()[:-2] + b"X-More: " + b"y" * 200, 431, ()),
    ("http2_request_line", b"GET /events/x HTTP/2.0\r\nHost: x\r\n\r\n", 505, ()),
    ("http2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, ()),
]


def _make_case(name, req, status, flags):
    def fn():
        with Broker(*flags) as b:
            r = raw_http(b.http_port, req, 5)
            expect_error(r, status, name)
            if status == 405:
                allow = [m.strip() for m in r.headers.get("allow", "").split(",")]
                check("GET" in allow, "405 Allow header %r lacks GET" % r.headers.get("allow"))
            assert_serving(b)
    fn.__name__ = "http_" + name
    return fn


for _case in CASES:
    test(_make_case(*_case))


@test
def http_max_topics_boundary():
    """Exactly --max-topics distinct topics is fine."""
    with Broker() as b, b.publisher() as p:
        c = b.sse("/events?%s" % "&".join("topic=t%d" % k for k in range(16)))
        eq(c.wait_head().status, 200, "16 topics (the default limit)")
        i = p.pub("t15", "last")
        eq(c.expect_events(1)[0].id, str(i), "event on the 16th topic")
        c.close()


@test
def http_target_just_under_limit():
    """A 4096-byte target is not 414 (it is a bad topic: 400)."""
    with Broker() as b:
        t = _target(4096 - len("/events/"))
        r = b.http(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % t).encode())
        expect_error(r, 400, "4096-byte target")


@test
def http_slowloris_half_request():
    with Broker("--header-timeout-ms", "500") as b:
        t0 = time.monotonic()
        r = raw_http(b.http_port, b"GET /events/x HTTP/1.1\r\nHost: x\r\n", 4)
        dt = time.monotonic() - t0
        check(r.end != "timeout", "half a request: connection still open after 4s "
              "(--header-timeout-ms 500)")
        check(dt <= 1.5, "half a request closed only after %.2fs (want <= header-timeout + 1s)" % dt)
        check(dt >= 0.4, "half a request closed after %.2fs, before the 500ms header timeout" % dt)
        if r.status is not None:
            expect_error(r, 408, "slowloris")
        assert_serving(b)


@test
def http_idle_connection_times_out():
    """A connection that sends nothing at all is closed after the header
    timeout too."""
    with Broker("--header-timeout-ms", "500") as b:
        t0 = time.monotonic()
        r = raw_http(b.http_port, b"", 4)
        dt = time.monotonic() - t0
        check(r.end != "timeout", "silent connection still open after 4s (--header-timeout-ms 500)")
        check(0.4 <= dt <= 1.5, "silent connection closed after %.2fs" % dt)
        if r.status is not None:
            expect_error(r, 408, "silent connection")
        assert_serving(b)


@test
def http_slowloris_trickle():
    """A head trickled one byte per 100ms still times out 500ms after the
    connection started: progress must not reset the header timer."""
    with Broker("--header-timeout-ms", "500") as b:
        req = b"GET /events/x HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 40 + b"\r\n\r\n"
        t0 = time.monotonic()
        r = raw_http(b.http_port, None, 8, chunks=[req[i:i + 1] for i in range(len(req))],
                     chunk_delay=0.1)
        dt = time.monotonic() - t0
        check(r.end != "timeout", "trickled head: connection still open after 8s")
        check(dt <= 1.5, "trickled head closed only after %.2fs (want <= header-timeout + 1s)" % dt)
        if r.status is not None:
            expect_error(r, 408, "trickle")
        assert_serving(b)


@test
def http_max_conns_503():
    with Broker("--max-conns", "5") as b:
        wait_for(lambda: b.metrics()["spout_connections_open"] <= 1, 3,
                 what="start-up probe connection to close")
        time.sleep(0.1)   # let the last scrape's own connection be reaped too
        streams = []
        try:
            for k in range(5):
                c = b.sse("/events/cap%d" % k)
                eq(c.wait_head().status, 200, "stream %d of 5" % (k + 1))
                streams.append(c)
            r = raw_http(b.http_port, b"GET /events/six HTTP/1.1\r\nHost: x\r\n\r\n", 5)
            expect_error(r, 503, "6th connection with --max-conns 5")
            # the 5 streams still work
            with b.publisher() as p:
                ids = [p.pub("cap%d" % k, "v") for k in range(5)]
            for k, c in enumerate(streams):
                eq(c.expect_events(1)[0].id, str(ids[k]), "stream %d after the 503" % k)
            # a slot frees up when a stream closes
            streams.pop().close()

            def try_stream():
                r = raw_http(b.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 2)
                return r.status == 200
            wait_for(try_stream, 3, interval=0.05, what="a slot to free after closing a stream")
        finally:
            for c in streams:
                c.close()

        # The broker notices the closes asynchronously: wait until only the
        # scrape's own connection is open (a scrape may itself get the 503).
        def drained():
            try:
                return b.metrics()["spout_connections_open"] <= 1
            except Exception:
                return False
        wait_for(drained, 5, interval=0.05, what="closed streams to be reaped")
        time.sleep(0.1)   # and the scrape's own connection
        assert_serving(b)


@test
def http_tls_client_hello():
    hello = bytes.fromhex(
        "16030100f8010000f40303") + os.urandom(32) + bytes.fromhex(
        "20") + os.urandom(32) + bytes.fromhex(
        "0008130213031301c02f0100") + bytes.fromhex("00a3000000130011000000") + b"\x00" * 150
    with Broker() as b:
        t0 = time.monotonic()
        r = raw_http(b.http_port, hello, 4)
        dt = time.monotonic() - t0
        check(r.end != "timeout", "TLS ClientHello: connection still open after 4s")
        check(dt < 2, "TLS ClientHello answered only after %.2fs" % dt)
        if r.status is not None:
            expect_error(r, 400, "TLS ClientHello")
        assert_serving(b)


@test
def http10_and_http11_both_work():
    with Broker() as b, b.publisher() as p:
        c10 = b.sse("/events/both", http10=True)
        c11 = b.sse("/events/both")
        eq(c10.wait_head().status, 200, "HTTP/1.0 status")
        eq(c11.wait_head().status, 200, "HTTP/1.1 status")
        i = p.pub("both", "v")
        eq(c10.expect_events(1)[0].id, str(i), "HTTP/1.0 event")
        eq(c11.expect_events(1)[0].id, str(i), "HTTP/1.1 event")
        c10.close()
        c11.close()
        # HTTP/1.0 with a Host header, small endpoints on 1.0
        r = b.http(b"GET /healthz HTTP/1.0\r\n\r\n")
        eq(r.status, 200, "healthz over HTTP/1.0")


@test
def http_many_bad_requests_in_a_row():
    """A burst of assorted bad requests on parallel connections leaves the
    broker serving and leaks no connections."""
    with Broker() as b:
        base = b.metrics()["spout_connections_open"]
        for _ in range(5):
            for name, req, status, flags in CASES:
                if flags:
                    continue
                r = raw_http(b.http_port, req, 5)
                eq(r.status, status, name)
        wait_for(lambda: b.metrics()["spout_connections_open"] <= base, 3,
                 what="connections_open back to %d" % base)
        assert_serving(b)
