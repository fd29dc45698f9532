"""Slow consumers, back-pressure and connection churn: memory and fds must
stay bounded and fast subscribers must not suffer."""
import selectors
import socket
import time

from harness import (Broker, SSEClient, assert_serving, check, eq, src_addr, test, wait_for)

PAYLOAD = "p" * 1000


def _shed(m):
    return (m['spout_connections_shed_total{reason="overflow"}'] +
            m['spout_connections_shed_total{reason="write_timeout"}'])


class Fleet:
    """N normal subscribers read through one selector."""

    def __init__(self, b, path, n):
        self.sel = selectors.DefaultSelector()
        self.subs = []
        self.got = []
        for k in range(n):
            c = SSEClient(b.http_port, path, src=src_addr(k))
            self.subs.append(c)
            self.got.append([])
            self.sel.register(c, selectors.EVENT_READ, k)
        self.pump_until(lambda: all(c.head is not None for c in self.subs), 10, "heads")
        for c in self.subs:
            eq(c.head.status, 200, "normal subscriber status")

    def pump_until(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            for k, c in enumerate(self.subs):
                self.got[k].extend(c.take_events())
            if pred():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("normal subscribers: timed out waiting for %s (counts %s, "
                                     "ended %s)" % (what, sorted(set(len(g) for g in self.got)),
                                                    [c.end for c in self.subs if c.end]))
            for key, _ in self.sel.select(min(left, 0.1)):
                self.subs[key.data].pump()

    def wait_count(self, n, timeout=10):
        self.pump_until(lambda: all(len(g) >= n for g in self.got), timeout, "%d events each" % n)

    def check_all(self, ids):
        for k, c in enumerate(self.subs):
            check(c.end is None, "normal subscriber %d was closed (%s)" % (k, c.end))
            got = [int(e.id) for e in self.got[k]]
            if got != ids:
                missing = sorted(set(ids) - set(got))
                raise AssertionError("normal subscriber %d: %d events, want %d (missing %d, "
                                     "first missing %s)" % (k, len(got), len(ids), len(missing),
                                                            missing[:5]))

    def close(self):
        self.sel.close()
        for c in self.subs:
            c.close()


@test(timeout=90)
def slow_consumer_shed_disconnect():
    with Broker("--write-timeout-ms", "1000") as b:
        fleet = Fleet(b, "/events/hose", 20)
        slow = SSEClient(b.http_port, "/events/hose", rcvbuf=4096)
        try:
            eq(slow.wait_head().status, 200, "slow subscriber status")
            m0 = b.metrics()
            rss0 = rss_max = b.rss_kb()
            ids = []
            # Loopback kernel buffers absorb a few MB for the slow socket
            # before the broker's writes block (spout_write_eagain_total
            # moves). From then on the write timeout (1s) or the queue bound
            # must shed it within write-timeout + 2s. Publish in batches of
            # 50 (paced so the 20 normal subscribers keep up) until the shed
            # shows, then 300 more events; at most 10000 events.
            t_stall = shed_at = stop_at = None
            with b.publisher() as p:
                for batch in range(10000 // 50):
                    ids += p.pub_many([("hose", "%d-%s" % (batch, PAYLOAD))] * 50)
                    fleet.wait_count(len(ids))
                    if batch % 2 == 0:
                        rss_max = max(rss_max, b.rss_kb())
                        m = b.metrics()
                        now = time.monotonic()
                        if t_stall is None and (m["spout_write_eagain_total"] >
                                                m0["spout_write_eagain_total"]):
                            t_stall = now
                        if shed_at is None and _shed(m) >= 1:
                            shed_at = now
                            stop_at = len(ids) + 300
                    if stop_at is not None and len(ids) >= stop_at:
                        break
            check(t_stall is not None, "the broker never blocked writing to the slow subscriber "
                  "(%d KiB published)" % len(ids))
            if shed_at is None:
                wait_for(lambda: _shed(b.metrics()) >= 1,
                         max(0.1, t_stall + 3.0 - time.monotonic()),
                         what="the slow consumer to be shed (write timeout 1000ms + 2s)")
                shed_at = time.monotonic()
            check(shed_at - t_stall <= 3.2, "slow consumer shed %.1fs after its writes blocked"
                  % (shed_at - t_stall))
            fleet.check_all(ids)
            m1 = b.metrics()
            check(_shed(m1) - _shed(m0) >= 1, "shed counters did not move")
            check(m1["spout_events_dropped_total"] > m0["spout_events_dropped_total"],
                  "events_dropped_total did not move (%s)" % m1["spout_events_dropped_total"])
            check(rss_max - rss0 < 64 * 1024,
                  "broker RSS grew %d KiB during the test" % (rss_max - rss0))
            # the slow one: what it got is a gap-free prefix, then the end
            end = slow.wait_end(5)
            check(end in ("eof", "reset"), "shed slow subscriber: stream end %r" % end)
            got = [int(e.id) for e in slow.take_events()]
            eq(got, ids[:len(got)], "events the slow subscriber did receive")
            check(len(got) < len(ids), "slow subscriber got everything?")
        finally:
            slow.close()
            fleet.close()
        assert_serving(b)


@test(timeout=90)
def slow_consumer_drop_oldest():
    with Broker("--overflow", "drop-oldest", "--queue", "8", "--write-timeout-ms", "30000") as b:
        fleet = Fleet(b, "/events/hose", 20)
        slow = SSEClient(b.http_port, "/events/hose", rcvbuf=4096)
        try:
            eq(slow.wait_head().status, 200, "slow subscriber status")
            m0 = b.metrics()
            rss0 = rss_max = b.rss_kb()
            ids = []
            # Kernel buffers on loopback absorb a few MB for the slow socket
            # before the broker's queue even matters: publish (paced so the
            # 20 normal subscribers are never more than 4 events behind)
            # until drops start, then 200 more.
            extra = None
            with b.publisher() as p:
                for batch in range(10000 // 4):
                    ids += p.pub_many([("hose", "%d-%s" % (batch, PAYLOAD))] * 4)
                    fleet.wait_count(len(ids))
                    if batch % 25 == 0:
                        rss_max = max(rss_max, b.rss_kb())
                        if extra is None and (b.metrics()["spout_events_dropped_total"] >
                                              m0["spout_events_dropped_total"]):
                            extra = len(ids) + 200
                    if extra is not None and len(ids) >= extra:
                        break
            fleet.check_all(ids)
            time.sleep(2.0)
            m1 = b.metrics()
            eq(_shed(m1), _shed(m0), "connections shed (drop-oldest, 30s write timeout)")
            check(m1["spout_events_dropped_total"] > m0["spout_events_dropped_total"],
                  "events_dropped_total did not move")
            check(rss_max - rss0 < 64 * 1024, "broker RSS grew %d KiB" % (rss_max - rss0))
            # now the slow one reads: still open, ids increasing, newest kept
            deadline = time.monotonic() + 5
            got = []
            while time.monotonic() < deadline:
                got += slow.read_events(10 ** 6, 0.3)
                if got and int(got[-1].id) == ids[-1]:
                    break
            check(slow.end is None, "slow subscriber was closed (%s)" % slow.end)
            nums = [int(e.id) for e in got]
            check(all(x < y for x, y in zip(nums, nums[1:])), "slow subscriber ids not increasing")
            check(nums and nums[-1] == ids[-1], "slow subscriber's last event %s, want the newest %d"
                  % (nums[-1:] or None, ids[-1]))
            check(len(nums) < len(ids), "slow subscriber lost nothing?")
            with b.publisher() as p:
                i = p.pub("hose", "one-more")
            ev = slow.expect_events(1)[0]
            eq(ev.id, str(i), "slow subscriber still subscribed")
        finally:
            slow.close()
            fleet.close()


@test(timeout=90)
def slow_consumer_latest_conflates_per_topic():
    """--policy 'px.>=latest': a lagging subscriber keeps only the newest
    pending event of each px.* topic; it is not shed, it ends up with the
    newest event of every topic, and conflations are counted. A subscriber
    of a topic outside the pattern keeps the default policy."""
    with Broker("--policy", "px.>=latest", "--queue", "64", "--write-timeout-ms", "30000") as b:
        topics = ["px.%s" % k for k in "abcde"]
        path = "/events?" + "&".join("topic=" + t for t in topics)
        fleet = Fleet(b, path, 5)
        slow = SSEClient(b.http_port, path, rcvbuf=4096)
        try:
            eq(slow.wait_head().status, 200, "slow subscriber status")
            m0 = b.metrics()
            ids, last_of = [], {}
            extra = None
            with b.publisher() as p:
                for batch in range(20000 // 5):
                    got = p.pub_many([(t, "%d-%s" % (batch, PAYLOAD)) for t in topics])
                    ids += got
                    last_of.update(zip(topics, got))
                    fleet.wait_count(len(ids))
                    if batch % 20 == 0 and extra is None:
                        m = b.metrics()
                        if m['spout_event_drops_total{reason="conflated"}'] > \
                                m0['spout_event_drops_total{reason="conflated"}']:
                            extra = len(ids) + 100
                    if extra is not None and len(ids) >= extra:
                        break
            check(extra is not None, "no conflation happened")
            fleet.check_all(ids)
            m1 = b.metrics()
            eq(_shed(m1), _shed(m0), "latest never sheds")
            eq(m1['spout_event_drops_total{reason="drop_oldest"}'],
               m0['spout_event_drops_total{reason="drop_oldest"}'],
               "5 topics fit in a 64-event queue: nothing dropped but by conflation")
            got = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                got += slow.read_events(10 ** 6, 0.3)
                if got and int(got[-1].id) == ids[-1]:
                    break
            check(slow.end is None, "slow subscriber was closed (%s)" % slow.end)
            nums = [int(e.id) for e in got]
            check(all(x < y for x, y in zip(nums, nums[1:])), "ids not increasing")
            check(len(nums) < len(ids), "nothing was conflated for the slow subscriber")
            tail = set(nums[-5:])
            eq(tail, set(last_of.values()), "the newest event of every topic arrives")
        finally:
            slow.close()
            fleet.close()


def _settle(b, base_fds, base_open, timeout=5):
    def ok():
        m = b.metrics()
        return b.nfds() <= base_fds + 5 and m["spout_connections_open"] <= base_open
    try:
        wait_for(ok, timeout, interval=0.1, what="fds and connections_open to settle")
    except AssertionError:
        raise AssertionError("after churn: nfds %d (baseline %d), connections_open %s (baseline %s)"
                             % (b.nfds(), base_fds, b.metrics()["spout_connections_open"],
                                base_open))


@test(timeout=120)
def connect_disconnect_churn_no_leak():
    with Broker() as b:
        def wave(start, n):
            cs = []
            for k in range(start, start + n):
                topic = "churn" if k % 2 else "churn%d" % k
                cs.append(SSEClient(b.http_port, "/events/%s?topic=x%d" % (topic, k % 7),
                                    src=src_addr(k)))
            for c in cs:
                eq(c.wait_head(5).status, 200, "churn subscriber status")
            for k, c in enumerate(cs):
                c.close(rst=(k % 4 == 0))
        wave(0, 100)     # warm-up: pools, slabs, tables
        time.sleep(0.3)
        base_open = b.metrics()["spout_connections_open"]
        base_fds = b.nfds()
        rss0 = b.rss_kb()
        for w in range(40):
            wave(1000 + w * 50, 50)
        _settle(b, base_fds, base_open)
        grew = b.rss_kb() - rss0
        check(grew < 16 * 1024, "RSS grew %d KiB over 2000 connect/disconnect cycles" % grew)
        m = b.metrics()
        check(m["spout_connections_accepted_total"] >= 2100, "accepted_total %s"
              % m["spout_connections_accepted_total"])
        assert_serving(b)


@test(timeout=60)
def abort_before_head_no_leak():
    """Clients that send a subscribe request and vanish at once (FIN or
    RST), before the stream head, leave nothing behind."""
    with Broker() as b:
        time.sleep(0.2)
        base_open = b.metrics()["spout_connections_open"]
        base_fds = b.nfds()
        rss0 = b.rss_kb()
        for k in range(600):
            s = socket.socket()
            s.bind((src_addr(k), 0))
            s.settimeout(3)
            s.connect(("127.0.0.1", b.http_port))
            s.sendall(b"GET /events/gone%d?topic=gone HTTP/1.1\r\nHost: x\r\n\r\n" % (k % 50))
            if k % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        _settle(b, base_fds, base_open)
        check(b.rss_kb() - rss0 < 16 * 1024, "RSS grew %d KiB" % (b.rss_kb() - rss0))
        m = b.metrics()
        eq(m["spout_topics"], 0, "topics with subscribers after everyone left")
        assert_serving(b)
