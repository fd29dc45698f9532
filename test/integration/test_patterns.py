"""Topic patterns: '*' matches one segment, '>' one or more trailing ones.
Pattern subscribers get every matching event exactly once (also when a
topic and patterns of the same connection overlap), patterns work across
workers, unsubscribing stops them, and resumption replays them."""
import urllib.parse

from harness import Broker, check, eq, test, wait_for


def _ids(events):
    return [int(e.id) for e in events if e.id]


@test
def star_and_tail_patterns_match_by_segment():
    with Broker() as b:
        star = b.sse("/events?topic=" + urllib.parse.quote("orders.*.created"))
        tail = b.sse("/events/metrics.%3E")           # '>' percent-encoded
        raw_tail = b.sse("/events/metrics.>")         # and raw, as curl sends it
        try:
            for c in (star, tail, raw_tail):
                eq(c.wait_head().status, 200, "pattern subscription")
            with b.publisher() as p:
                pubs = [(t, p.pub(t, t)) for t in (
                    "orders.eu.created", "orders.created", "orders.eu.x.created",
                    "orders.us.created", "metrics", "metrics.cpu", "metrics.cpu.0",
                    "other.eu.created")]
            want_star = [i for t, i in pubs if t in ("orders.eu.created", "orders.us.created")]
            want_tail = [i for t, i in pubs if t in ("metrics.cpu", "metrics.cpu.0")]
            eq(_ids(star.expect_events(2)), want_star, "orders.*.created")
            eq(_ids(tail.expect_events(2)), want_tail, "metrics.> (encoded)")
            eq(_ids(raw_tail.expect_events(2)), want_tail, "metrics.> (raw)")
            for c in (star, tail, raw_tail):
                c.expect_no_event(0.3)
        finally:
            for c in (star, tail, raw_tail):
                c.close()


@test
def overlapping_topic_and_patterns_deliver_once():
    with Broker("--workers", "2") as b:
        path = "/events?" + "&".join("topic=" + urllib.parse.quote(t) for t in (
            "a.b.c", "a.*.c", "a.>", "*.b.c", ">"))
        conns = [b.sse(path) for _ in range(6)]     # spread over both workers
        try:
            for c in conns:
                eq(c.wait_head().status, 200, "status")
            with b.publisher() as p:
                ids = [p.pub("a.b.c", "x"), p.pub("z", "y"), p.pub("a.q.c", "w")]
            for k, c in enumerate(conns):
                eq(_ids(c.expect_events(3)), ids, "connection %d: each event once" % k)
                c.expect_no_event(0.3)
        finally:
            for c in conns:
                c.close()


@test
def pattern_unsubscribe_stops_routing():
    with Broker() as b:
        with b.sse("/events/" + urllib.parse.quote("jobs.>")) as c:
            c.wait_head()
            with b.publisher() as p:
                p.pub("jobs.1", "x")
            c.expect_events(1)
        # the only subscriber left: the router forgets the pattern
        def unrouted():
            before = b.metrics()["spout_events_unrouted_total"]
            with b.publisher() as p:
                p.pub("jobs.2", "y")
            return b.metrics()["spout_events_unrouted_total"] == before + 1
        wait_for(unrouted, 5, interval=0.1, what="pattern to be dropped by the router")


@test
def bad_patterns_are_400():
    with Broker() as b:
        for bad, why in (("a.b*", "wildcard"), ("a.%3E.b", "last segment"),
                         ("*.", "empty"), ("a..*", "empty")):
            r = b.http(("GET /events?topic=%s HTTP/1.1\r\nHost: x\r\n\r\n" % bad).encode())
            eq(r.status, 400, "pattern %r" % bad)
            check(why in r.body.decode(), "reason for %r: %r" % (bad, r.body))


@test
def resume_replays_pattern_matches_in_order():
    with Broker("--history", "100") as b:
        with b.publisher() as p:
            pubs = [(t, p.pub(t, t)) for t in (
                "px.eu", "news", "px.us", "px.eu.fx", "px.us", "news")]
        first = pubs[0][1]
        path = "/events?topic=" + urllib.parse.quote("px.*") + "&topic=news"
        with b.sse(path, extra_headers="Last-Event-ID: %d\r\n" % first) as c:
            got = c.expect_events(4)
            eq(_ids(got), [i for t, i in pubs[1:] if t != "px.eu.fx"],
               "pattern and topic replay merged, each once")
            check(not any(e.event == "spout-gap" for e in got), "no gap")
            with b.publisher() as p:
                live = p.pub("px.jp", "live")
            eq(_ids(c.expect_events(1)), [live], "live after replay")
        with b.sse("/events/" + urllib.parse.quote("px.>"),
                   extra_headers="Last-Event-ID: 0\r\n") as c:
            want = [i for t, i in pubs if t.startswith("px.")] + [live]
            got = c.expect_events(len(want))
            check(not any(e.event == "spout-gap" for e in got), "no gap from 0")
            eq(_ids(got), want, "px.> from the start, the live one included")
            c.expect_no_event(0.3)
