"""Cluster mode: several spoutd nodes sharing one Redis backplane (--redis),
behind HAProxy. Delivery from any node to every node's subscribers with the
same ids, ids increasing cluster-wide, Redis subscriptions only for wanted
topics, resuming on another node (exact seam, trimmed history -> spout-gap),
nodes killed or drained under traffic, and Redis down, restarted empty or
stalled. Helpers (RedisServer, HAProxy, Cluster) are in cluster.py."""
import json
import random
import select
import signal
import threading
import time

from cluster import Cluster, RedisServer, unique_prefix
from harness import (Broker, Publisher, SSEClient, check, eq, free_port, run_spoutd, test,
                     wait_for)

# fast failure detection for the Redis-down/stalled tests:
# stalled after max(3 x 200 ms, 500 ms) = 0.6 s without a probe back
FAST = ("--redis-timeout-ms", "500", "--redis-probe-ms", "200")

BACKPLANE_METRICS = (
    "spout_backplane_up", "spout_backplane_ready", "spout_backplane_connects_total",
    "spout_backplane_errors_total", "spout_backplane_events_received_total",
    "spout_backplane_subscriptions", "spout_backplane_probe_rtt_seconds",
    "spout_backplane_replays_total", "spout_backplane_resets_total",
)


def _ids(events):
    """Ids of the events that carry one (spout-gap notices carry none)."""
    return [int(e.id) for e in events if e.has_id and e.event != "spout-gap"]


def _gaps(events):
    return [e for e in events if e.event == "spout-gap"]


def _hdr(last_id):
    return "Last-Event-ID: %s\r\n" % last_id


def _increasing(ids):
    return all(a < b for a, b in zip(ids, ids[1:]))


def _expect_err_backplane(port, topic="t", timeout=4.0):
    """PUB on <port> must be refused with ERR backplane..."""
    with Publisher(port, timeout=timeout) as p:
        p.send_raw("PUB %s refused\n" % topic)
        line = p.read_line(timeout)
    check(line is not None and line.startswith("ERR backplane"),
          "PUB while the backplane is unavailable: reply %r, want 'ERR backplane...'" % (line,))
    return line


class Follower:
    """An SSE subscriber that behaves like EventSource: when its stream ends
    it reconnects to <port> (at most once per min_gap s), sending the id of
    the last event it saw as Last-Event-ID. events: every event with an id,
    over all its connections, in arrival order; gaps: spout-gap notices."""

    def __init__(self, port, path, last_id=None, min_gap=0.05):
        self.port = port
        self.path = path
        self.last_id = last_id
        self.min_gap = min_gap
        self.events = []
        self.gaps = []
        self.ends = []          # how each connection ended
        self.statuses = []      # response status of each ended connection
        self.conns = 0
        self.c = None
        self._opened = 0.0
        self._reopen_at = 0.0
        self._open()

    def _open(self):
        hdr = "" if self.last_id is None else _hdr(self.last_id)
        self._opened = time.monotonic()
        try:
            self.c = SSEClient(self.port, self.path, extra_headers=hdr, connect_timeout=2.0)
            self.conns += 1
        except OSError:
            self.c = None
            self._reopen_at = time.monotonic() + self.min_gap

    def fileno(self):
        return self.c.fileno()

    def _collect(self):
        for e in self.c.take_events():
            if e.event == "spout-gap":
                self.gaps.append(e)
            elif e.has_id:
                self.events.append(e)
                self.last_id = e.id

    def _ended(self):
        c = self.c
        if c.end is not None:
            return c.end
        # a complete non-stream answer (":draining", a 503) through HAProxy,
        # which keeps the client connection alive after it
        if c.head is not None and not c.chunked:
            cl = c.head.get("content-length")
            if cl is not None and c.body_len >= int(cl):
                return "length"
        return None

    def pump(self):
        if self.c is None:
            if time.monotonic() >= self._reopen_at:
                self._open()
            return
        self.c.pump()
        self._collect()
        end = self._ended()
        if end is not None:
            self.ends.append(end)
            self.statuses.append(self.c.head.status if self.c.head else None)
            self.c.close()
            self.c = None
            self._reopen_at = max(time.monotonic(), self._opened + self.min_gap)

    def cut(self):
        """Hang up now (keeping what arrived) and reconnect at once."""
        if self.c is not None:
            self.c.pump()
            self._collect()
            self.c.close()
            self.c = None
        self._open()

    def ids(self):
        return [int(e.id) for e in self.events]

    def at(self, last):
        return self.last_id is not None and int(self.last_id) >= last

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def pump_all(followers, wait=0.05):
    for f in followers:
        f.pump()
    socks = [f.c for f in followers if f.c is not None]
    if socks:
        select.select(socks, [], [], wait)
    else:
        time.sleep(min(wait, 0.02))


def drive(followers, until, timeout, what, bps=()):
    """Pump the followers until until() holds (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        for f in followers:
            f.pump()
        for bp in bps:
            bp.check()
        if until():
            return
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        pump_all(followers, 0.05)


class BackgroundPublisher:
    """Publishes <topic> on a thread in small pipelined batches until
    stopped (or <limit> events). ids: the OK ids, in order."""

    def __init__(self, port, topic, batch=5, pause=0.01, limit=None):
        self.port, self.topic, self.batch, self.pause, self.limit = port, topic, batch, pause, limit
        self.ids = []
        self.error = None
        self._stop = threading.Event()
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.t.start()
        return self

    def _run(self):
        try:
            with Publisher(self.port, timeout=10) as p:
                k = 0
                while not self._stop.is_set() and (self.limit is None or k < self.limit):
                    n = self.batch if self.limit is None else min(self.batch, self.limit - k)
                    self.ids.extend(p.pub_many([(self.topic, "e%d" % (k + j)) for j in range(n)],
                                               timeout=10))
                    k += n
                    time.sleep(self.pause)
        except BaseException as e:   # noqa: BLE001 - reported by check()/stop()
            self.error = e
        finally:
            self.done.set()

    def check(self):
        if self.error is not None:
            raise AssertionError("background publisher failed after %d events: %s"
                                 % (len(self.ids), self.error))

    def wait_count(self, n, timeout=10.0):
        wait_for(lambda: self.error is not None or len(self.ids) >= n, timeout,
                 what="%d events published" % n)
        self.check()

    def stop(self, timeout=15.0, raise_error=True):
        self._stop.set()
        self.t.join(timeout)
        if raise_error:
            check(not self.t.is_alive(), "background publisher did not stop")
            self.check()
        return list(self.ids)


# ---------------------------------------------------------------- delivery

@test(timeout=30)
def cross_node_delivery_same_ids_on_every_node():
    N = 50
    with Cluster(lb=False) as cl:
        subs = [n.sse("/events/x") for n in cl.nodes]
        try:
            for k, c in enumerate(subs):
                eq(c.wait_head().status, 200, "node %d stream status" % (k + 1))
            with cl.nodes[0].publisher() as p:
                ids = p.pub_many([("x", "e%d" % k) for k in range(N)])
                typed = p.event("x", "alert", "line1\nline2 h\u00e9 \u2713")
            check(_increasing(ids + [typed]), "OK ids not increasing: %r" % ids[:10])
            for k, c in enumerate(subs):
                got = c.expect_events(N + 1, 5)
                eq(_ids(got), ids + [typed], "ids delivered by node %d" % (k + 1))
                eq([e.data for e in got[:N]], ["e%d" % j for j in range(N)],
                   "data delivered by node %d" % (k + 1))
                eq((got[N].event, got[N].data), ("alert", "line1\nline2 h\u00e9 \u2713"),
                   "typed multi-line event on node %d" % (k + 1))
                c.expect_no_event(0.2)
            for k in (1, 2):
                got = cl.metric(k, "spout_backplane_events_received_total")
                check(got >= N + 1, "node %d spout_backplane_events_received_total %r < %d"
                      % (k + 1, got, N + 1))
            for k in range(3):
                eq(cl.metric(k, "spout_backplane_up"), 1, "node %d spout_backplane_up" % (k + 1))
                eq(cl.metric(k, "spout_backplane_ready"), 1,
                   "node %d spout_backplane_ready" % (k + 1))
        finally:
            for c in subs:
                c.close()


@test(timeout=30)
def ids_increase_in_publish_order_across_nodes():
    with Cluster() as cl:
        path = "/events?topic=inc.n1&topic=inc.n2&topic=inc.n3&topic=inc.lb"
        with cl.nodes[1].sse(path) as c:
            eq(c.wait_head().status, 200, "status")
            pubs = [n.publisher() for n in cl.nodes] + [cl.lb_publisher()]
            names = ["inc.n1", "inc.n2", "inc.n3", "inc.lb"]
            sent = []
            try:
                for r in range(5):
                    for p, t in zip(pubs, names):
                        sent.append((p.pub(t, "%s-%d" % (t, r)), t, "%s-%d" % (t, r)))
            finally:
                for p in pubs:
                    p.close()
            ids = [i for i, _, _ in sent]
            check(_increasing(ids), "ids not strictly increasing in publish order across "
                  "nodes: %r" % ids)
            got = c.expect_events(len(sent), 5)
            eq([(int(e.id), e.data) for e in got], [(i, d) for i, _, d in sent],
               "one stream sees every node's events in publish (= id) order")
            c.expect_no_event(0.2)


@test(timeout=30)
def only_wanted_topics_are_subscribed_in_redis():
    with Cluster(lb=False) as cl:
        eq(cl.channel_topics(), [], "event channels before any subscriber")
        base = [cl.metric(k, "spout_backplane_subscriptions") for k in range(3)]
        c = cl.nodes[1].sse("/events/t1")
        c2 = cl.nodes[1].sse("/events/t1")
        c3 = None
        try:
            eq(c.wait_head().status, 200, "status")
            eq(c2.wait_head().status, 200, "status")
            eq(cl.channel_topics(), ["t1"], "channels with one topic wanted on node 2")
            eq(cl.numsub("t1"), 1, "Redis subscribers of t1 (two clients on one node)")
            eq(cl.metric(1, "spout_backplane_subscriptions"), base[1] + 1,
               "node 2 spout_backplane_subscriptions")
            eq(cl.metric(0, "spout_backplane_subscriptions"), base[0],
               "node 1 spout_backplane_subscriptions")
            r0 = [cl.metric(k, "spout_backplane_events_received_total") for k in range(3)]
            with cl.nodes[0].publisher() as p:
                p.pub_many([("t2", "nobody%d" % k) for k in range(20)])
                i = p.pub("t1", "wanted")
            eq(_ids(c.expect_events(1)), [i], "t1 event on node 2")
            eq(_ids(c2.expect_events(1)), [i], "t1 event on node 2 (second client)")
            c.expect_no_event(0.3)
            eq(cl.channel_topics(), ["t1"], "publishing t2 subscribes nobody to it")
            r1 = [cl.metric(k, "spout_backplane_events_received_total") for k in range(3)]
            eq(r1[0], r0[0], "events received by node 1 (no subscribers)")
            eq(r1[2], r0[2], "events received by node 3 (no subscribers)")
            eq(r1[1], r0[1] + 1, "events received by node 2 (only the t1 event)")
            # a subscriber on another node: a second Redis subscriber
            c3 = cl.nodes[2].sse("/events/t1")
            eq(c3.wait_head().status, 200, "status")
            eq(cl.numsub("t1"), 2, "Redis subscribers of t1 (nodes 2 and 3)")
            c3.close()
            wait_for(lambda: cl.numsub("t1") == 1, 5, interval=0.05,
                     what="node 3 to unsubscribe t1")
            # one of two clients leaves: the node keeps the channel
            c.close()
            time.sleep(0.3)
            eq(cl.channel_topics(), ["t1"], "channel while one client remains")
            c2.close()
            wait_for(lambda: cl.channel_topics() == [], 5, interval=0.05,
                     what="t1's channel to disappear after its last client left")
            wait_for(lambda: cl.metric(1, "spout_backplane_subscriptions") == base[1], 5,
                     interval=0.05, what="node 2 spout_backplane_subscriptions back to %r"
                     % base[1])
        finally:
            for x in (c, c2, c3):
                if x is not None:
                    x.close()


@test(timeout=30)
def patterns_across_nodes():
    with Cluster(lb=False) as cl:
        eq(cl.numpat(), 0, "Redis patterns before any subscriber")
        star = cl.nodes[0].sse("/events/a.*")
        rest = cl.nodes[1].sse("/events/a.%3E")
        mixed = cl.nodes[2].sse("/events?topic=a.y&topic=*.y")
        subs = (star, rest, mixed)
        try:
            for c in subs:
                eq(c.wait_head().status, 200, "%s status" % c.path)
            check(cl.numpat() >= 1, "no Redis pattern subscription for pattern subscribers")
            topics = ["a.x", "a.y.z", "b.y", "a", "ab.x", "a.y", "b.x.y", "x.a.y"]
            pubs = [n.publisher() for n in cl.nodes]
            try:
                ids = {t: pubs[k % 3].pub(t, t) for k, t in enumerate(topics)}
            finally:
                for p in pubs:
                    p.close()
            want = {star: ["a.x", "a.y"],
                    rest: ["a.x", "a.y.z", "a.y"],
                    mixed: ["b.y", "a.y"]}     # a.y matches both: delivered once
            for c in subs:
                got = c.expect_events(len(want[c]), 5)
                eq([(int(e.id), e.data) for e in got], [(ids[t], t) for t in want[c]],
                   "events for %s" % c.path)
                c.expect_no_event(0.3)
        finally:
            for c in subs:
                c.close()
        wait_for(lambda: cl.numpat() == 0 and cl.channels() == [], 5, interval=0.05,
                 what="pattern and channel subscriptions to go with their clients")


@test(timeout=30)
def head_is_sent_only_after_the_redis_subscription():
    """An event published right after a client got its 200 head, on
    another node, reaches it: every stream below subscribes a new channel
    or pattern."""
    with Cluster(nodes=2, lb=False) as cl:
        with cl.nodes[0].publisher() as p:
            for k in range(20):
                if k % 4 == 3:
                    path, topic = "/events/fresh%d.*" % k, "fresh%d.x" % k
                else:
                    path, topic = "/events/fresh%d" % k, "fresh%d" % k
                with cl.nodes[1].sse(path) as c:
                    eq(c.wait_head().status, 200, "status")
                    i = p.pub(topic, "right-after-head")
                    got = c.read_events(1, 3)
                    check(got, "round %d: event published right after the head of %s never "
                          "arrived" % (k, path))
                    eq(int(got[0].id), i, "round %d id" % k)


# ---------------------------------------------------------------- resuming

@test(timeout=30)
def resume_on_another_node_and_through_haproxy():
    with Cluster() as cl:
        with cl.nodes[0].publisher() as p:
            c = cl.nodes[1].sse("/events/r")
            eq(c.wait_head().status, 200, "status")
            first = p.pub_many([("r", "f%d" % k) for k in range(5)])
            eq(_ids(c.expect_events(5)), first, "before the cut (node 2)")
            c.close()
            missed = p.pub_many([("r", "m%d" % k) for k in range(7)])
            rep0 = cl.metric(2, "spout_backplane_replays_total")
            with cl.nodes[2].sse("/events/r", extra_headers=_hdr(first[-1])) as c3:
                eq(c3.wait_head().status, 200, "status on node 3")
                got = c3.expect_events(7)
                eq(_gaps(got), [], "no gap expected")
                eq(_ids(got), missed, "exactly the missed events, replayed by node 3")
                eq([e.data for e in got], ["m%d" % k for k in range(7)], "their data")
                live = p.pub("r", "live")
                eq(_ids(c3.expect_events(1)), [live], "then live")
                c3.expect_no_event(0.3)
            check(cl.metric(2, "spout_backplane_replays_total") >= rep0 + 1,
                  "node 3 spout_backplane_replays_total did not grow")
            # through the balancer, whatever node it lands on
            with cl.lb_sse("/events/r", extra_headers=_hdr(first[1])) as c4:
                eq(c4.wait_head().status, 200, "status through haproxy")
                want = first[2:] + missed + [live]
                got = c4.expect_events(len(want))
                eq(_ids(got), want, "resumed through haproxy (Last-Event-ID header)")
                live2 = p.pub("r", "live2")
                eq(_ids(c4.expect_events(1)), [live2], "then live through haproxy")
                c4.expect_no_event(0.3)
            with cl.lb_sse("/events/r?lastEventId=%d" % missed[3]) as c5:
                got = c5.expect_events(len(missed[4:]) + 2)
                eq(_ids(got), missed[4:] + [live, live2], "resumed through haproxy (?lastEventId=)")
                c5.expect_no_event(0.3)


@test(timeout=30)
def resume_multi_topic_in_id_order_on_another_node():
    with Cluster(nodes=2, lb=False) as cl:
        pubs = [n.publisher() for n in cl.nodes]
        try:
            seq = [("a" if k % 3 else "b", k) for k in range(12)] + [("c", 99)]
            ids = [pubs[k % 2].pub(t, "%s%d" % (t, n)) for k, (t, n) in enumerate(seq)]
            check(_increasing(ids), "ids not increasing: %r" % ids)
            # ids[0] was "b": resume after it on a and b, on node 2
            with cl.nodes[1].sse("/events?topic=a&topic=b&lastEventId=%d" % ids[0]) as c:
                got = c.expect_events(11)
                eq(_ids(got), ids[1:12], "a and b merged in id order, c excluded")
                eq([e.data for e in got], ["%s%d" % s for s in seq[1:12]], "their data")
                lc = pubs[0].pub("c", "no")
                la = pubs[0].pub("a", "yes")
                check(la > lc, "ids")
                eq(_ids(c.expect_events(1)), [la], "live after the replay")
                c.expect_no_event(0.3)
        finally:
            for p in pubs:
                p.close()


@test(timeout=30)
def resume_pattern_on_another_node():
    with Cluster(nodes=2, lb=False) as cl:
        with cl.nodes[0].publisher() as p:
            topics = ["m.x", "m.y", "n.x", "m.z.w", "m.q", "mm.x"]
            ids = [p.pub(t, t) for t in topics]
        with cl.nodes[1].sse("/events/m.*", extra_headers=_hdr(ids[0])) as c:
            got = c.expect_events(2)
            eq([(int(e.id), e.data) for e in got], [(ids[1], "m.y"), (ids[4], "m.q")],
               "events matching m.* after the id, replayed on node 2")
            with cl.nodes[0].publisher() as p:
                i = p.pub("m.live", "m.live")
            eq(_ids(c.expect_events(1)), [i], "then live")
            c.expect_no_event(0.3)


@test(timeout=30)
def trimmed_history_gives_gap_on_another_node():
    with Cluster("--history", "3", nodes=3, lb=False) as cl:
        with cl.nodes[0].publisher() as p:
            ids = p.pub_many([("g", "g%d" % k) for k in range(10)])
        with cl.nodes[1].sse("/events/g", extra_headers=_hdr(ids[0])) as c:
            got = c.expect_events(4)
            eq(got[0].event, "spout-gap", "first event is the gap notice")
            check(not got[0].has_id, "gap notice carries no id")
            eq(json.loads(got[0].data), {"reason": "evicted", "last_event_id": str(ids[0])},
               "gap data")
            eq(_ids(got[1:]), ids[-3:], "what history (--history 3) still holds")
            eq([e.data for e in got[1:]], ["g7", "g8", "g9"], "their data")
            c.expect_no_event(0.3)
        # resuming from the event just before what is retained misses nothing
        with cl.nodes[2].sse("/events/g", extra_headers=_hdr(ids[6])) as c:
            got = c.expect_events(3)
            eq(_gaps(got), [], "no gap when nothing after the id was trimmed")
            eq(_ids(got), ids[7:], "the retained events")
            c.expect_no_event(0.3)


@test(timeout=60)
def seam_under_concurrent_publishing_across_nodes():
    """While node 1 publishes continuously, a client keeps hanging up and
    resuming on node 3, and others resume from ids just behind the
    publisher on nodes 2, 3 and through haproxy: each sees exactly the
    published ids after its starting point, no gap, no duplicate."""
    N = 1500
    with Cluster("--history", "3000") as cl:
        bp = BackgroundPublisher(cl.nodes[0].pub_port, "seam", batch=10, pause=0.005,
                                 limit=N).start()
        followers = []
        oneshots = []
        try:
            bp.wait_count(50)
            start = bp.ids[10]
            chain = Follower(cl.nodes[2].http_port, "/events/seam", last_id=start)
            followers.append(chain)
            ports = [cl.nodes[1].http_port, cl.nodes[2].http_port, cl.lb.http_port]
            rnd = random.Random(11)
            now = time.monotonic()
            next_cut = now + rnd.uniform(0.03, 0.12)
            next_join = now
            deadline = now + 40
            while not bp.done.is_set():
                check(time.monotonic() < deadline, "publisher did not finish")
                pump_all(followers, 0.02)
                bp.check()
                now = time.monotonic()
                if now >= next_cut:
                    chain.cut()
                    next_cut = now + rnd.uniform(0.03, 0.12)
                if len(oneshots) < 12 and now >= next_join and len(bp.ids) > 100:
                    last = bp.ids[-1 - rnd.randrange(0, 60)]
                    f = Follower(ports[len(oneshots) % 3], "/events/seam", last_id=last)
                    oneshots.append((last, f))
                    followers.append(f)
                    next_join = now + rnd.uniform(0.02, 0.08)
            ids = bp.stop()
            eq(len(ids), N, "published")
            final = ids[-1]
            drive(followers, lambda: all(f.at(final) for f in followers), 15,
                  "every client to reach the last event")
            eq(chain.gaps, [], "resuming client got a gap")
            got = chain.ids()
            want = [i for i in ids if i > start]
            if got != want:
                dups = len(got) - len(set(got))
                missing = sorted(set(want) - set(got))[:5]
                raise AssertionError("resuming client (%d connections): %d events, want %d; "
                                     "%d duplicates, first missing %r"
                                     % (chain.conns, len(got), len(want), dups, missing))
            check(chain.conns >= 5, "the resuming client reconnected only %d times"
                  % (chain.conns - 1))
            check(len(oneshots) >= 6, "only %d clients joined mid-stream" % len(oneshots))
            for k, (last, f) in enumerate(oneshots):
                eq(f.gaps, [], "client %d got a gap" % k)
                eq(f.conns, 1, "client %d connections" % k)
                eq(f.ids(), [i for i in ids if i > last],
                   "client %d resumed after %d (port %d)" % (k, last, f.port))
        finally:
            bp.stop(raise_error=False)
            for f in followers:
                f.close()


# ---------------------------------------------------------------- node failures

def _clients_survive_node_loss(cl, lose, nclients, what):
    """nclients Followers through haproxy; a seed event; a publisher on
    node 2 (direct); lose() takes node 1 away; returns (followers, seed,
    published ids) after everyone caught up."""
    fs = [Follower(cl.lb.http_port, "/events/k") for _ in range(nclients)]
    bp = None
    try:
        drive(fs, lambda: all(f.c is not None and f.c.head is not None for f in fs), 5,
              "stream heads")
        for f in fs:
            eq(f.c.head.status, 200, "stream status through haproxy")
        with cl.nodes[1].publisher() as p:
            seed = p.pub("k", "seed")
        drive(fs, lambda: all(f.ids() == [seed] for f in fs), 5, "the seed event everywhere")
        bp = BackgroundPublisher(cl.nodes[1].pub_port, "k", batch=5, pause=0.01).start()
        drive(fs, lambda: len(bp.ids) >= 30, 10, "publishing to start", bps=[bp])
        lose(fs, bp)
        n = len(bp.ids)
        drive(fs, lambda: len(bp.ids) >= n + 40, 10, "publishing to go on", bps=[bp])
        ids = bp.stop()
        bp = None
        drive(fs, lambda: all(f.at(ids[-1]) for f in fs), 10,
              "every client to catch up after %s" % what)
        for k, f in enumerate(fs):
            eq(f.gaps, [], "client %d got a gap" % k)
            got = f.ids()
            if got != [seed] + ids:
                raise AssertionError("client %d (%d connections, ends %r): %d events, want %d; "
                                     "%d duplicates, first missing %r"
                                     % (k, f.conns, f.ends, len(got), len(ids) + 1,
                                        len(got) - len(set(got)),
                                        sorted(set([seed] + ids) - set(got))[:5]))
        cut = [f for f in fs if f.conns > 1]
        check(cut, "no client was on the node that went away (leastconn should have put "
              "%d of %d there)" % (nclients // 3, nclients))
        return fs, cut
    finally:
        if bp is not None:
            bp.stop(raise_error=False)
        for f in fs:
            f.close()


@test(timeout=60)
def sigkill_a_node_its_clients_resume_through_haproxy():
    with Cluster() as cl:
        def lose(fs, bp):
            cl.kill_node(0)
        _clients_survive_node_loss(cl, lose, 6, "SIGKILL of node 1")
        cl.lb.wait_status("n1", "DOWN", timeout=3)


@test(timeout=60)
def sigterm_drain_moves_clients_to_the_other_nodes():
    with Cluster(node_flags={0: ["--drain-ms", "1000", "--retry-ms", "200"]}) as cl:
        exit_info = {}

        def lose(fs, bp):
            cl.nodes[0].send_signal(signal.SIGTERM)
            drive(fs, lambda: not cl.nodes[0].alive(), 5, "node 1 to exit after its drain",
                  bps=[bp])
            exit_info["rc"], _ = cl.stop_node(0, timeout=2)
        fs, cut = _clients_survive_node_loss(cl, lose, 9, "the drain of node 1")
        eq(exit_info["rc"], 0, "drained node's exit status")
        for f in cut:
            eq(f.ends[0], "clean", "a drained stream ends with the terminating chunk "
               "(ends %r)" % f.ends)
        cl.lb.wait_status("n1", "DOWN", timeout=3)


# ---------------------------------------------------------------- Redis failures

@test(timeout=60)
def redis_down_then_back_empty():
    with Cluster("--heartbeat-ms", "200", *FAST, nodes=2, lb=False) as cl:
        c = cl.nodes[1].sse("/events/d")
        try:
            eq(c.wait_head().status, 200, "status")
            with cl.nodes[0].publisher() as p:
                before = p.pub_many([("d", "b%d" % k) for k in range(3)])
            eq(_ids(c.expect_events(3)), before, "before Redis goes down")
            with cl.nodes[1].publisher() as p:
                before.append(p.pub("other", "x"))
            errs0 = [cl.metric(k, "spout_backplane_errors_total") for k in range(2)]
            conn0 = [cl.metric(k, "spout_backplane_connects_total") for k in range(2)]

            cl.redis.stop()
            for k in range(2):
                body = cl.wait_ready(k, 503, timeout=5)
                check("backplane" in body.lower(),
                      "node %d /readyz body %r does not mention the backplane" % (k + 1, body))
                eq(cl.metric(k, "spout_backplane_up"), 0, "node %d spout_backplane_up" % (k + 1))
                eq(cl.metric(k, "spout_backplane_ready"), 0,
                   "node %d spout_backplane_ready" % (k + 1))
                _expect_err_backplane(cl.nodes[k].pub_port, "d")
            # the open stream stays open and keeps getting heartbeats
            n0 = c.ncomments
            c.expect_no_event(1.0)
            eq(c.end, None, "stream state while Redis is down")
            check(c.ncomments >= n0 + 2, "heartbeats while Redis is down: %d in 1 s (200 ms "
                  "period)" % (c.ncomments - n0))

            cl.redis.start()        # same port, empty
            for k in range(2):
                cl.wait_ready(k, 200, timeout=8)
            with cl.nodes[0].publisher() as p:
                after = p.pub("d", "after")
            check(after > max(before), "id after Redis came back empty (%d) is not above the "
                  "earlier ones (max %d)" % (after, max(before)))
            ev = c.expect_events(1, 5)
            eq([(int(e.id), e.data) for e in ev], [(after, "after")],
               "the already-open stream gets events again")
            with cl.nodes[1].publisher() as p:
                after2 = p.pub("d", "after2")
            check(after2 > after, "ids")
            eq(_ids(c.expect_events(1)), [after2], "and from the other node")
            # an id from before the restart: history is gone
            with cl.nodes[0].sse("/events/d", extra_headers=_hdr(before[0])) as r:
                got = r.expect_events(3)
                eq((got[0].event, json.loads(got[0].data)),
                   ("spout-gap", {"reason": "evicted", "last_event_id": str(before[0])}),
                   "resuming with an id from before Redis restarted")
                eq(_ids(got[1:]), [after, after2], "then what the new Redis holds")
                r.expect_no_event(0.3)
            for k in range(2):
                eq(cl.metric(k, "spout_backplane_up"), 1, "node %d up again" % (k + 1))
                check(cl.metric(k, "spout_backplane_errors_total") > errs0[k],
                      "node %d spout_backplane_errors_total did not grow" % (k + 1))
                check(cl.metric(k, "spout_backplane_connects_total") > conn0[k],
                      "node %d spout_backplane_connects_total did not grow" % (k + 1))
        finally:
            c.close()


@test(timeout=40)
def ready_without_redis_answers_degraded():
    with Cluster("--ready-without-redis", *FAST, nodes=1, lb=False) as cl:
        # ready (degraded) at once: wait for the backplane to come up
        wait_for(lambda: cl.readyz(0)[0] == 200 and not cl.readyz(0)[1].startswith("degraded"),
                 5, interval=0.05, what="readyz not degraded with Redis up")
        eq(cl.metric(0, "spout_backplane_up"), 1, "spout_backplane_up")
        cl.redis.stop()
        cl.wait_ready(0, 200, timeout=5, body="degraded")
        wait_for(lambda: cl.metric(0, "spout_backplane_up") == 0, 5, interval=0.05,
                 what="spout_backplane_up 0")
        _expect_err_backplane(cl.nodes[0].pub_port)
        cl.redis.start()
        wait_for(lambda: cl.readyz(0)[0] == 200 and not cl.readyz(0)[1].startswith("degraded"),
                 8, interval=0.05, what="readyz no longer degraded")
        with cl.nodes[0].publisher() as p:
            p.pub("t", "ok again")
    # a node started while its Redis is not there yet
    r = RedisServer(free_port())
    try:
        with Broker("--redis", r.url, "--redis-prefix", unique_prefix(), "--ready-without-redis",
                    *FAST) as b:
            rz = b.http(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            eq(rz.status, 200, "readyz of a node started without its Redis")
            check(rz.body.startswith(b"degraded"), "its body %r" % rz.body)
            r.start()

            def healthy():
                rz = b.http(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                return rz.status == 200 and not rz.body.startswith(b"degraded")
            wait_for(healthy, 8, interval=0.05, what="readyz not degraded once Redis is up")
            with b.sse("/events/late") as c:
                eq(c.wait_head().status, 200, "status")
                with b.publisher() as p:
                    i = p.pub("late", "x")
                eq(_ids(c.expect_events(1)), [i], "delivery once Redis is up")
    finally:
        r.close()


@test(timeout=40)
def stalled_redis_turns_readyz_503_then_back():
    with Cluster(*FAST, nodes=2, lb=False) as cl:
        c = cl.nodes[1].sse("/events/s")
        try:
            eq(c.wait_head().status, 200, "status")
            cl.redis.pause()
            t0 = time.monotonic()
            for k in range(2):
                cl.wait_ready(k, 503, timeout=5)
            dt = time.monotonic() - t0
            # max(3 x 200 ms, 500 ms) = 0.6 s, plus room for a loaded machine
            check(dt <= 2.5, "readyz turned 503 %.2fs after Redis stalled (want <= 2.5 s)" % dt)
            eq(cl.metric(0, "spout_backplane_ready"), 0, "spout_backplane_ready while stalled")
            _expect_err_backplane(cl.nodes[0].pub_port, "s")
            eq(c.end, None, "open stream while Redis is stalled")
            cl.redis.resume()
            for k in range(2):
                cl.wait_ready(k, 200, timeout=8)
            eq(cl.metric(0, "spout_backplane_ready"), 1, "spout_backplane_ready after SIGCONT")
            with cl.nodes[0].publisher() as p:
                i = p.pub("s", "after-stall")
            # The PUB refused during the stall had reached the stalled Redis:
            # its outcome is unknown to the node (a timeout), and Redis runs
            # it on SIGCONT, so it may be delivered here (before ours).
            got = c.read_events(1, 5)
            if got and got[0].data == "refused":
                got = c.read_events(1, 5)
            check(got, "no event after the stall")
            eq((int(got[0].id), got[0].data), (i, "after-stall"),
               "the open stream gets events after the stall")
        finally:
            c.close()


# ---------------------------------------------------------------- configuration

def _run_spoutd(args, env_extra=None):
    """Run spoutd to completion on free loopback ports (want exit 2)."""
    return run_spoutd(["--drain-ms", "0"] + args, env_extra, timeout=4)


@test(timeout=60)
def bad_redis_flags_exit_2():
    ok_addr = "127.0.0.1:%d" % free_port()   # nothing listens: the value is valid
    cases = [
        (["--redis", "nonsense"], "redis"),
        (["--redis", "redis://h:99999"], "redis"),
        (["--redis", ok_addr, "--redis-prefix", "a b"], "redis-prefix"),
        (["--redis", ok_addr, "--redis-prefix", "a{b"], "redis-prefix"),
        (["--redis", ok_addr, "--redis-prefix", "a}b"], "redis-prefix"),
        (["--redis", ok_addr, "--redis-prefix", "p" * 65], "redis-prefix"),
    ]
    for args, word in cases:
        rc, out, err = _run_spoutd(args)
        eq(rc, 2, "exit status for %s" % " ".join(args))
        check(err.strip(), "%s: no message on stderr" % " ".join(args))
        check(word in err, "%s: stderr %r does not name %r" % (" ".join(args), err.strip(), word))
    rc, out, err = _run_spoutd([], {"SPOUT_REDIS": "nonsense"})
    eq(rc, 2, "exit status for SPOUT_REDIS=nonsense")
    check("SPOUT_REDIS" in err, "stderr %r does not name SPOUT_REDIS" % err.strip())
    rc, out, err = _run_spoutd([], {"SPOUT_REDIS": ok_addr, "SPOUT_REDIS_PREFIX": "a b"})
    eq(rc, 2, "exit status for SPOUT_REDIS_PREFIX='a b'")
    check("SPOUT_REDIS_PREFIX" in err, "stderr %r does not name SPOUT_REDIS_PREFIX" % err.strip())


@test(timeout=30)
def redis_url_with_password_db_and_environment():
    """redis://:password@host:port/db works (from the flag and from
    SPOUT_REDIS), a 64-byte prefix is accepted, and every key the cluster
    writes is in that db and starts with the prefix."""
    with RedisServer(None, "--requirepass", "s3cret") as r:
        prefix = (unique_prefix() + "-" + "x" * 64)[:64]
        url = "redis://:s3cret@127.0.0.1:%d/2" % r.port
        with Broker("--redis", url, "--redis-prefix", prefix) as a, \
                Broker(env={"SPOUT_REDIS": url, "SPOUT_REDIS_PREFIX": prefix}) as b:
            with b.sse("/events/u") as c:
                eq(c.wait_head().status, 200, "status")
                eq(r.cli("PUBSUB", "CHANNELS", prefix + ":e:*", password="s3cret"),
                   [prefix + ":e:u"], "channels")
                with a.publisher() as p:
                    i = p.pub("u", "via-url")
                eq(_ids(c.expect_events(1)), [i], "delivered between the two nodes")
            keys = r.cli("KEYS", "*", password="s3cret", db=2)
            check(keys, "no keys in db 2")
            # the prefix may be wrapped in a hash tag ({prefix}:...) so that a
            # node's keys share one Redis Cluster slot
            bad = [k for k in keys if not (k.startswith(prefix) or k.startswith("{%s}" % prefix))]
            eq(bad, [], "keys without the prefix")
            eq(r.cli("DBSIZE", password="s3cret", db=0), 0, "keys in db 0")


@test(timeout=30)
def prefixes_isolate_clusters_sharing_one_redis():
    with RedisServer() as r:
        pa, pb = unique_prefix(), unique_prefix()
        with Broker("--redis", r.url, "--redis-prefix", pa) as a, \
                Broker("--redis", r.url, "--redis-prefix", pb) as b:
            with a.sse("/events/same") as ca, b.sse("/events/same") as cb:
                eq(ca.wait_head().status, 200, "status")
                eq(cb.wait_head().status, 200, "status")
                eq(sorted(r.cli("PUBSUB", "CHANNELS", "*:e:same")),
                   sorted([pa + ":e:same", pb + ":e:same"]), "one channel per prefix")
                with a.publisher() as p:
                    i = p.pub("same", "for-a")
                with b.publisher() as p:
                    j = p.pub("same", "for-b")
                eq([(int(e.id), e.data) for e in ca.expect_events(1)], [(i, "for-a")],
                   "cluster a's event in cluster a")
                eq([(int(e.id), e.data) for e in cb.expect_events(1)], [(j, "for-b")],
                   "cluster b's event in cluster b")
                ca.expect_no_event(0.3)
                cb.expect_no_event(0.1)


@test(timeout=30)
def backplane_metrics_on_and_off():
    with Broker() as b:
        m = b.metrics()
        for name in BACKPLANE_METRICS:
            eq(m.get(name, 0), 0, "%s without --redis" % name)
    with Cluster("--redis-probe-ms", "200", nodes=2, lb=False) as cl:
        for k in range(2):
            eq(cl.metric(k, "spout_backplane_up"), 1, "node %d spout_backplane_up" % (k + 1))
            eq(cl.metric(k, "spout_backplane_ready"), 1, "node %d spout_backplane_ready" % (k + 1))
            check(cl.metric(k, "spout_backplane_connects_total") >= 1,
                  "node %d spout_backplane_connects_total" % (k + 1))
            eq(cl.metric(k, "spout_backplane_errors_total"), 0,
               "node %d spout_backplane_errors_total" % (k + 1))

            def rtt(k=k):
                m = cl.nodes[k].metrics()
                v = m.get("spout_backplane_probe_rtt_seconds")
                if v is None:       # a histogram instead of a gauge
                    v = m.get("spout_backplane_probe_rtt_seconds_count", 0)
                return v > 0
            wait_for(rtt, 5, interval=0.1,
                     what="node %d spout_backplane_probe_rtt_seconds > 0" % (k + 1))
        with cl.nodes[1].sse("/events/mt") as c:
            eq(c.wait_head().status, 200, "status")
            check(cl.metric(1, "spout_backplane_subscriptions") >= 1, "subscriptions gauge")
            r0 = cl.metric(1, "spout_backplane_events_received_total")
            with cl.nodes[0].publisher() as p:
                p.pub_many([("mt", "x")] * 5)
            eq(len(c.expect_events(5)), 5, "events")
            wait_for(lambda: cl.metric(1, "spout_backplane_events_received_total") >= r0 + 5, 2,
                     interval=0.05, what="spout_backplane_events_received_total + 5")
            time.sleep(0.2)
            eq(cl.metric(1, "spout_backplane_events_received_total"), r0 + 5,
               "spout_backplane_events_received_total")
