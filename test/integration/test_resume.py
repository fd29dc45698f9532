"""Resumable streams: history, Last-Event-ID (header and ?lastEventId=),
exact replay across topics, the seam between replay and live traffic under
concurrent publishing, and the documented spout-gap event."""
import json
import random
import selectors
import threading
import time

from harness import Broker, SSEClient, check, eq, src_addr, test, wait_for


def _resume(b, path, last_id, query=False):
    if query:
        sep = "&" if "?" in path else "?"
        return b.sse("%s%slastEventId=%s" % (path, sep, last_id))
    return b.sse(path, extra_headers="Last-Event-ID: %s\r\n" % last_id)


def _ids(events):
    return [int(e.id) for e in events if e.id]


@test
def resume_single_topic_then_live():
    with Broker("--history", "100") as b:
        with b.publisher() as p:
            ids = [p.pub("news", "n%d" % k) for k in range(5)]
        with _resume(b, "/events/news", ids[1]) as c:
            eq(c.wait_head().status, 200, "status")
            got = c.expect_events(3)
            eq(_ids(got), ids[2:], "replayed ids")
            eq([e.data for e in got], ["n2", "n3", "n4"], "replayed data")
            with b.publisher() as p:
                live = p.pub("news", "live")
            ev = c.expect_events(1)[0]
            eq((int(ev.id), ev.data), (live, "live"), "live after replay")
            c.expect_no_event(0.3)
            check(not any(e.event == "spout-gap" for e in got), "no gap expected")
        m = b.metrics()
        eq(m["spout_replays_total"], 1, "replays")
        eq(m["spout_replayed_events_total"], 3, "replayed events")
        eq(m["spout_replay_gaps_total"], 0, "gaps")


@test
def resume_multi_topic_in_id_order_via_query():
    with Broker("--history", "100") as b:
        with b.publisher() as p:
            seq = [("a" if k % 3 else "b", k) for k in range(12)] + [("c", 99)]
            ids = [p.pub(t, "%s%d" % (t, k)) for t, k in seq]
        # ids[0] was published to "b"; resume after it on a and b
        with _resume(b, "/events?topic=a&topic=b", ids[0], query=True) as c:
            got = c.expect_events(11)
            eq(_ids(got), ids[1:12], "a and b merged in id order, c excluded")
            c.expect_no_event(0.3)


@test
def resume_from_zero_replays_everything_held():
    with Broker("--history", "4") as b:
        with b.publisher() as p:
            ids = [p.pub("z", str(k)) for k in range(3)]
        with _resume(b, "/events/z", 0) as c:
            eq(_ids(c.expect_events(3)), ids, "all three")
            c.expect_no_event(0.3)


@test
def gap_when_history_no_longer_holds_the_id():
    with Broker("--history", "3") as b:
        with b.publisher() as p:
            ids = [p.pub("g", str(k)) for k in range(10)]
        with _resume(b, "/events/g", ids[0]) as c:
            got = c.expect_events(4)
            eq(got[0].event, "spout-gap", "first event is the gap notice")
            check(got[0].id is None or got[0].id == "", "gap notice carries no id")
            eq(json.loads(got[0].data), {"reason": "evicted", "last_event_id": str(ids[0])},
               "gap data")
            eq(_ids(got[1:]), ids[-3:], "what history still holds")
        eq(b.metrics()["spout_replay_gaps_total"], 1, "gap counted")


@test
def gap_for_unknown_and_malformed_ids():
    with Broker() as b:
        with b.publisher() as p:
            p.pub("u", "x")
        with _resume(b, "/events/u", 18000000000000000000) as c:
            ev = c.expect_events(1)[0]
            eq((ev.event, json.loads(ev.data)["reason"]), ("spout-gap", "unknown-id"),
               "id from the future (e.g. before a broker restart)")
            with b.publisher() as p:
                i = p.pub("u", "after")
            eq(int(c.expect_events(1)[0].id), i, "live events follow")
        for bad in ("abc", "12x", "-1", "99999999999999999999999"):
            with _resume(b, "/events/u", bad) as c:
                eq(c.wait_head().status, 200, "malformed id %r still streams" % bad)
                ev = c.expect_events(1)[0]
                eq((ev.event, json.loads(ev.data)), ("spout-gap", {"reason": "malformed-id"}),
                   "malformed id %r" % bad)
        with _resume(b, "/events/u", "") as c:
            eq(c.wait_head().status, 200, "empty id")
            c.expect_no_event(0.3)   # empty means "no id": plain live stream


@test
def id_from_before_a_restart_gets_gap_and_what_is_held():
    """Ids continue above the previous run's (they start at the start time
    in µs), so a client holding an id from before a restart is told it
    missed events and gets everything this run retains."""
    with Broker() as b:
        with b.publisher() as p:
            ids = [p.pub("rs", "r%d" % k) for k in range(3)]
        old_id = ids[0] - 10**6       # an id the previous run could have given
        with _resume(b, "/events/rs", old_id) as c:
            got = c.expect_events(4)
            eq((got[0].event, json.loads(got[0].data)),
               ("spout-gap", {"reason": "evicted", "last_event_id": str(old_id)}), "gap notice")
            eq(_ids(got[1:]), ids, "everything this run holds")
        with _resume(b, "/events/rs", 0) as c:
            eq(_ids(c.expect_events(3)), ids, "0 asks for everything held, without a gap")
            c.expect_no_event(0.3)


@test
def history_off_reports_gap():
    with Broker("--history", "0") as b:
        with b.publisher() as p:
            ids = [p.pub("o", str(k)) for k in range(3)]
        with _resume(b, "/events/o", ids[0]) as c:
            ev = c.expect_events(1)[0]
            eq((ev.event, json.loads(ev.data)["reason"]), ("spout-gap", "evicted"), "no history")
            c.expect_no_event(0.3)
        with _resume(b, "/events/o", ids[-1]) as c:
            c.wait_head()
            c.expect_no_event(0.3)   # nothing missed, nothing to say


@test
def history_ttl_expires_events():
    with Broker("--history-ttl", "1") as b:
        with b.publisher() as p:
            p.pub("t", "old")
        wait_for(lambda: b.metrics()["spout_history_evicted_total"] >= 1, 5, interval=0.2,
                 what="history to expire")
        with _resume(b, "/events/t", 0) as c:
            ev = c.expect_events(1)[0]
            eq((ev.event, json.loads(ev.data)["reason"]), ("spout-gap", "evicted"), "expired")
            c.expect_no_event(0.3)


@test
def history_bytes_bound_holds():
    with Broker("--history", "1000", "--history-bytes", "65536") as b:
        with b.publisher() as p:
            ids = p.pub_many([("big%d" % (k % 7), "x" * 1000) for k in range(300)])
        m = b.metrics()
        check(0 < m["spout_history_bytes"] <= 65536,
              "history bytes %d over the 64 KiB bound" % m["spout_history_bytes"])
        check(m["spout_history_evicted_total"] >= 200, "evictions %d" % m["spout_history_evicted_total"])
        kept = int(m["spout_history_events"])
        with _resume(b, "/events?" + "&".join("topic=big%d" % k for k in range(7)), 0) as c:
            got = c.expect_events(kept + 1)
            eq(got[0].event, "spout-gap", "older events were dropped")
            eq(_ids(got[1:]), ids[-kept:], "the newest events survive, in order")


@test(timeout=120)
def seam_between_replay_and_live_under_concurrent_publishing():
    """Clients resume from ids behind the publisher while it publishes as
    fast as it can: each must see exactly L+1 .. last, no gap, no dup."""
    N = 4000
    with Broker("--history", "5000") as b:
        published = []
        done = threading.Event()

        def publish():
            # small pipelined batches, paced, so clients join mid-stream
            with b.publisher(timeout=30) as p:
                for start in range(0, N, 10):
                    published.extend(p.pub_many([("seam", "e%d" % k)
                                                 for k in range(start, start + 10)]))
                    time.sleep(0.003)
            done.set()

        t = threading.Thread(target=publish)
        t.start()
        sel = selectors.DefaultSelector()
        clients = []
        rnd = random.Random(7)
        try:
            while not done.is_set() and len(clients) < 40:
                if len(published) < 100:
                    time.sleep(0.005)
                    continue
                last = published[-1] - rnd.randrange(0, 80)
                c = SSEClient(b.http_port, "/events/seam", src=src_addr(len(clients)),
                              extra_headers="Last-Event-ID: %d\r\n" % last)
                sel.register(c, selectors.EVENT_READ, c)
                clients.append((last, c, []))
                time.sleep(rnd.uniform(0.0, 0.01))
            t.join(60)
            check(done.is_set(), "publisher did not finish")
            final = published[-1]
            check(len(clients) >= 10, "only %d clients resumed mid-stream" % len(clients))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for _, c, got in clients:
                    got.extend(c.take_events())
                if all(got and int(got[-1].id) >= final for _, _, got in clients):
                    break
                for key, _ in sel.select(0.2):
                    key.data.pump()
            for k, (last, c, got) in enumerate(clients):
                check(not any(e.event == "spout-gap" for e in got), "client %d got a gap" % k)
                eq(_ids(got), list(range(last + 1, final + 1)),
                   "client %d resumed after %d" % (k, last))
        finally:
            sel.close()
            for _, c, _ in clients:
                c.close()


@test
def clients_leaving_before_replay_answer_leak_nothing():
    """Connect with Last-Event-ID and hang up at once, many times: the
    broker keeps each connection only until the router's answer comes."""
    with Broker("--history", "50") as b:
        with b.publisher() as p:
            last = p.pub_many([("z%d" % (k % 5), "v") for k in range(100)])[-1]
        fds0 = b.nfds()
        for k in range(300):
            c = SSEClient(b.http_port, "/events?topic=z0&topic=z1&topic=z2",
                          src=src_addr(k), extra_headers="Last-Event-ID: %d\r\n" % (last - 40))
            c.close(rst=(k % 2 == 0))
        wait_for(lambda: b.nfds() <= fds0 + 2, 5, what="fds back to baseline")

        def drained():
            try:
                return b.metrics()["spout_connections_open"] <= 1
            except Exception:
                return False
        wait_for(drained, 5, what="connections reaped")
        with _resume(b, "/events/z3", last - 10) as c:
            eq(len(c.expect_events(2)), 2, "still resumes afterwards")


@test
def ids_keep_growing_across_quick_restarts():
    """Restarts in quick succession (well within one second) must never
    hand out an id again."""
    last = 0
    for _ in range(4):
        with Broker() as b:
            with b.publisher() as p:
                ids = p.pub_many([("q", "x")] * 20)
        check(ids[0] > last, "a restarted broker reused ids: %d <= %d" % (ids[0], last))
        last = ids[-1]
