"""Real clients against the real broker: the npm `eventsource` package in
Node, Debian's Chromium (headless, driven by playwright-core), and curl.

The Node scripts live in test/clients/ (es_client.mjs, browser.mjs) with
their dependencies pinned in package.json/package-lock.json; `tools/deps.sh
test` (run by `make test`) installs node, npm, chromium and runs `npm ci`.
Each script prints one JSON line per thing that happens and bounds its own
run time; the helpers here bound it again and kill only what they started,
by PID.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import (ARTIFACTS, CURRENT, ROOT, Broker, check, eq, free_port, kill_pid, spawn,
                     test)
from noderun import CHROMIUM, CLIENTS, NodeRun, require

class TapProxy:
    """A loopback TCP relay in front of the broker's HTTP port. It records
    every request head that crosses it (what a client really sent on the
    wire, Last-Event-ID included), relays bytes both ways unchanged, ends
    the client side when the broker ends a stream, and can cut every
    connection itself (a network drop that the broker did not cause)."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.heads = []          # {"request": line, "headers": {name: value}, "upstream": ...}
        self._lock = threading.Lock()
        self._pairs = []
        self._threads = []
        self._stop = threading.Event()
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.lsock], [], [], 0.05)
            if not r or self._stop.is_set():
                continue
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()
            with self._lock:
                self._threads.append(t)

    def _serve(self, c):
        c.settimeout(5.0)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf and len(buf) < 65536:
                b = c.recv(65536)
                if not b:
                    break
                buf += b
        except OSError:
            pass
        head = {"request": None, "headers": {}, "upstream": None}
        if b"\r\n\r\n" in buf:
            lines = buf[:buf.index(b"\r\n\r\n")].decode("latin-1").split("\r\n")
            head["request"] = lines[0]
            for l in lines[1:]:
                k, _, v = l.partition(":")
                head["headers"][k.strip().lower()] = v.strip()
        try:
            u = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2.0)
            head["upstream"] = "connected"
        except OSError as e:
            head["upstream"] = "refused: %s" % e
            u = None
        with self._lock:
            self.heads.append(head)
            if u is not None:
                self._pairs.append((c, u))
        if u is None or head["request"] is None:
            c.close()
            if u is not None:
                u.close()
            return
        u.settimeout(5.0)
        try:
            u.sendall(buf)
            while not self._stop.is_set():
                r, _, _ = select.select([c, u], [], [], 0.05)
                for s in r:
                    b = s.recv(65536)
                    if not b:
                        raise EOFError
                    (u if s is c else c).sendall(b)
        except (OSError, EOFError):
            pass
        finally:
            for s in (c, u):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self):
        """End every relayed connection now, on both sides."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def snapshot(self):
        with self._lock:
            return [dict(h) for h in self.heads]

    def close(self):
        self._stop.set()
        self.cut()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False


def events_of(run):
    return [(l["type"], l["id"], l["data"], l["lastEventId"]) for l in run.kinds("event")]


# ------------------------------------------------------------------ Node


@test(timeout=40)
def node_eventsource_receives_typed_and_multiline():
    require()
    topic = "clients.node"
    with Broker() as b:
        url = "http://127.0.0.1:%d/events/%s" % (b.http_port, topic)
        with NodeRun("es_client.mjs", [url, "--type", "alert", "--count", "4",
                                       "--timeout", "8000"]) as c:
            c.wait_kind("open", timeout=10)
            with b.publisher() as p:
                i1 = p.pub(topic, "plain one")
                # three lines, \r\n and \n mixed: EventSource joins data
                # lines with \n
                i2 = p.event(topic, "alert", b"line one\r\nline two\nline three")
                # a type nobody listens for: must not show up as "message"
                p.event(topic, "unheard", b"must not arrive")
                i4 = p.event(topic, "-", b"untyped\r\nsecond line")
                i5 = p.pub(topic, " leading space kept, UTF-8: h\u00e9llo \u2713")
            rc, done = c.finish(12)
            eq(rc, 0, "es_client exit status (done: %r)\n%s" % (done, c.describe()))
            eq(events_of(c), [
                ("message", str(i1), "plain one", str(i1)),
                ("alert", str(i2), "line one\nline two\nline three", str(i2)),
                ("message", str(i4), "untyped\nsecond line", str(i4)),
                ("message", str(i5), " leading space kept, UTF-8: h\u00e9llo \u2713", str(i5)),
            ], "events the eventsource package dispatched")
            origin = "http://127.0.0.1:%d" % b.http_port
            for l in c.kinds("event"):
                eq(l["origin"], origin, "MessageEvent.origin")
            eq(len(c.kinds("open")), 1, "open events")
            eq(c.kinds("error"), [], "error events")


@test(timeout=60)
def node_eventsource_reconnects_with_last_event_id():
    """The eventsource package reconnects by itself, and its reconnect
    request carries Last-Event-ID = the last id it saw. Seen on the wire by
    a relay between client and broker, in two ways the stream can end:
      1. the broker ends it (SIGTERM), and a new broker comes up on the
         same ports;
      2. the connection drops while the broker stays up (the relay cuts it).
    And the broker side of resumption, as docs/protocol.md 2.4 states it:
    after the restart (history lives in memory only) the client is told it
    missed events (spout-gap, reason evicted) and then gets the new run's
    events; after the drop it gets the event published while it was away,
    replayed from history, exactly once."""
    require()
    topic = "clients.resume"
    with Broker() as b1, TapProxy(b1.http_port) as tap:
        url = "http://127.0.0.1:%d/events/%s" % (tap.port, topic)
        with NodeRun("es_client.mjs", [url, "--type", "spout-gap", "--count", "7", "--opens", "3",
                                       "--until-data", "final", "--log-requests",
                                       "--timeout", "30000"]) as c:
            c.wait_kind("open", 1, timeout=10)
            with b1.publisher() as p:
                ids1 = [p.pub(topic, "before-%d" % k) for k in (1, 2, 3)]
            c.wait(lambda ls: len([l for l in ls if l.get("kind") == "event"]) >= 3, 5,
                   "the first 3 events")

            # 1. the broker ends the stream: SIGTERM, clean exit
            rc, _ = b1.stop()
            eq(rc, 0, "first broker's exit status after SIGTERM")
            c.wait_kind("error", 1, timeout=5)     # the library noticed the end
            with Broker(http_port=b1.http_port, pub_port=b1.pub_port) as b2:
                # the library waits its retry delay (3 s, or the broker's
                # retry:) and reconnects; nothing prompts it
                c.wait_kind("open", 2, timeout=10)
                with b2.publisher() as p:
                    after = p.pub(topic, "after-restart")
                c.wait(lambda ls: any(l.get("data") == "after-restart" for l in ls), 5,
                       "the event published on the restarted broker")

                # 2. the connection drops, the broker stays up
                nerr = len(c.kinds("error"))
                ncut = len(tap.snapshot())     # requests before the drop
                tap.cut()
                c.wait_kind("error", nerr + 1, timeout=5)
                with b2.publisher() as p:
                    gap = p.pub(topic, "gap")     # published while disconnected
                    c.wait_kind("open", 3, timeout=10)
                    final = p.pub(topic, "final")
                rc, done = c.finish(10)
                eq(rc, 0, "es_client exit status (done: %r)\n%s" % (done, c.describe()))

    heads = tap.snapshot()
    for h in heads:
        eq(h["request"], "GET /events/%s HTTP/1.1" % topic, "request line")
        eq(h["headers"].get("accept"), "text/event-stream", "Accept header")
    eq(heads[0]["headers"].get("last-event-id"), None, "Last-Event-ID on the first connect")
    # every later request (an early retry refused before the new broker was
    # up included) names the last id seen before its stream ended
    phase1, phase2 = heads[1:ncut], heads[ncut:]
    check(phase1 and phase2, "requests through the relay: %r (drop after %d)" % (heads, ncut))
    for h in phase1:
        eq(h["headers"].get("last-event-id"), str(ids1[-1]),
           "Last-Event-ID after the broker ended the stream")
    for h in phase2:
        eq(h["headers"].get("last-event-id"), str(after), "Last-Event-ID after the drop")
    eq(phase1[-1]["upstream"], "connected", "the reconnect reached the restarted broker")
    eq(phase2[-1]["upstream"], "connected", "the reconnect after the drop reached the broker")

    # what the client says it asked for matches the wire
    sent = [l["headers"].get("last-event-id") for l in c.kinds("request")]
    eq(sent, [h["headers"].get("last-event-id") for h in heads],
       "Last-Event-ID per request, client's log vs wire")

    opens = c.kinds("open")
    eq(len(opens), 3, "open events (first connect, after the restart, after the drop)")
    got = [(l["type"], l["id"], l["data"]) for l in c.kinds("event")]
    # spout-gap has no id field; eventsource 3.x reports an empty lastEventId
    gap_notice = ("spout-gap", None,
                  '{"reason":"evicted","last_event_id":"%d"}' % ids1[-1])
    want = [("message", str(i), "before-%d" % k) for k, i in zip((1, 2, 3), ids1)] + \
        [gap_notice,                                   # history did not survive the restart
         ("message", str(after), "after-restart"),
         ("message", str(gap), "gap"),                 # replayed after the drop
         ("message", str(final), "final")]
    eq(got, want, "events, in order, each once")
    check(after > ids1[-1], "the restarted broker's ids continue above the old ones")
    # each open came after an error (the library's own reconnect cycle)
    kinds = [l["kind"] for l in c.snapshot() if l["kind"] in ("open", "error")]
    eq(kinds[0], "open", "first open/error line")
    check(kinds.count("error") >= 2, "error events: %r" % kinds)


# ------------------------------------------------------------------ Chromium


def _browser_run(b, page_port, topic, expect, shot, publish, count=3):
    """Run browser.mjs against broker b; publish(p) once the page's
    EventSource opened (expect events) or failed (expect none)."""
    args = ["--spout-port", b.http_port, "--page-port", page_port, "--topic", topic,
            "--type", "alert", "--expect", expect, "--count", count, "--settle", 1200,
            "--timeout", 20000, "--screenshot", os.path.join(ARTIFACTS, shot)]
    with NodeRun("browser.mjs", args, name=os.path.splitext(shot)[0]) as r:
        r.wait_kind("page", timeout=15)
        r.wait(lambda ls: [l for l in ls if l.get("kind") in ("open", "error")], 10,
               "the page's EventSource to open or fail")
        with b.publisher() as p:
            ids = publish(p)
        rc, done = r.finish(20)
        eq(rc, 0, "browser.mjs exit status (done: %r)\n%s" % (done, r.describe()))
        check(done is not None, "no done line:\n%s" % r.describe())
        return r, done, ids


def _is_png(path):
    with open(path, "rb") as f:
        head = f.read(8)
    return head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 1000


@test(timeout=90)
def chromium_eventsource_cross_origin():
    require(browser=True)
    topic = "clients.browser"
    page_port = free_port()
    page_origin = "http://127.0.0.1:%d" % page_port

    def publish_all(p):
        i1 = p.pub(topic, "hello from spout")
        i2 = p.event(topic, "alert", b"line one\r\nline two\nline three")
        p.event(topic, "unheard", b"must not arrive")
        i4 = p.event(topic, "-", b"x\ny")
        return i1, i2, i4

    # allowed: --cors-origin names the page's origin
    with Broker("--cors-origin", page_origin) as b:
        r, done, (i1, i2, i4) = _browser_run(b, page_port, topic, "events",
                                             "chromium-cors-allowed.png", publish_all)
        spout_origin = "http://127.0.0.1:%d" % b.http_port
    eq(done["reason"], "count", "why browser.mjs finished")
    eq([(e["type"], e["data"], e["lastEventId"]) for e in done["received"]], [
        ("message", "hello from spout", str(i1)),
        ("alert", "line one\nline two\nline three", str(i2)),
        ("message", "x\ny", str(i4)),
    ], "events in window.received")
    for e in done["received"]:
        eq(e["origin"], spout_origin, "MessageEvent.origin in the page")
    eq(done["opens"], 1, "open events in the page")
    eq(done["errors"], [], "error events in the page")
    eq(done["readyState"], 1, "EventSource.readyState at the end (OPEN)")
    check(_is_png(done["screenshot"]), "screenshot %r is not a PNG" % done["screenshot"])

    # refused: no --cors-origin, and --cors-origin naming another origin.
    # The broker serves the stream either way; the browser must not let the
    # page read it.
    other = "http://127.0.0.1:%d" % free_port()
    for label, flags, why in (("no-cors", [], "No 'Access-Control-Allow-Origin' header"),
                              ("wrong-origin", ["--cors-origin", other], other)):
        with Broker(*flags) as b:
            r, done, _ = _browser_run(b, page_port, topic, "none",
                                      "chromium-cors-%s.png" % label, publish_all)
            opened = b.metric("spout_streams_opened_total")
        what = "(%s) " % label
        eq(done["reason"], "settled", what + "why browser.mjs finished")
        eq(done["received"], [], what + "events in window.received")
        eq(done["opens"], 0, what + "open events in the page")
        check(len(done["errors"]) >= 1, what + "no error event in the page")
        check(opened >= 1, what + "the broker never served the stream (%r)" % opened)
        cors = [l["text"] for l in r.kinds("console") if "blocked by CORS policy" in l["text"]]
        check(cors, what + "no CORS error in the page console:\n%s" % r.describe())
        check(any(why in t for t in cors), what + "CORS error %r does not mention %r"
              % (cors[0], why))
        check(_is_png(done["screenshot"]), "screenshot %r is not a PNG" % done["screenshot"])


# ------------------------------------------------------------------ curl


@test(timeout=30)
def curl_raw_wire_format():
    """curl --http1.1 (dechunked and --raw) and --http1.0 see the event
    stream exactly as docs/protocol.md 2.2 describes."""
    check(shutil.which("curl"), "curl is not on PATH (run tools/deps.sh test)")
    topic = "clients.curl"
    with Broker() as b:
        url = "http://127.0.0.1:%d/events/%s" % (b.http_port, topic)
        runs = {}
        for name, opts in (("h11", ["--http1.1"]), ("h11raw", ["--http1.1", "--raw"]),
                           ("h10", ["--http1.0"])):
            body = os.path.join(ARTIFACTS, "curl-%s-%d.body" % (name, os.getpid()))
            head = os.path.join(ARTIFACTS, "curl-%s-%d.head" % (name, os.getpid()))
            bf = open(body, "wb")
            proc = spawn(["curl", "-sN", "--max-time", "20", "-D", head] + opts + [url],
                         stdin=subprocess.DEVNULL, stdout=bf, stderr=subprocess.DEVNULL)
            runs[name] = (proc, bf, body, head)

        def content(name):
            with open(runs[name][2], "rb") as f:
                return f.read()
        for name in runs:     # subscribed once the body opener is there
            deadline = time.monotonic() + 5
            while b"\n\n" not in content(name):
                check(time.monotonic() < deadline, "curl %s: no opener within 5s: %r"
                      % (name, content(name)))
                time.sleep(0.02)
        # Each stream opens with the comment ":ok" and, if the broker sends
        # one, the reconnection delay (jittered per connection, so each
        # stream's own opener is taken as the reference); nothing else.
        openers = {}
        for name in runs:
            c = content(name).decode("latin-1")
            if name == "h11raw":      # "<hex size>\r\n<opener>\r\n"
                size, _, rest = c.partition("\r\n")
                check(re.fullmatch(r"[0-9a-f]+", size), "first chunk size %r" % size)
                openers[name] = rest[:int(size, 16)]
            else:
                openers[name] = c[:c.index("\n\n") + 2]
            check(re.fullmatch(r":ok\n(retry: [1-9][0-9]*\n)?\n", openers[name]),
                  "curl %s: stream opener %r, want ':ok' and at most a retry: line"
                  % (name, openers[name]))

        with b.publisher() as p:
            i1 = p.pub(topic, "hello")
            i2 = p.event(topic, "alert", b"first\r\nsecond\nthird")
            i3 = p.event(topic, "-", b"lone\rcr")
            i4 = p.pub(topic, "")
            i5 = p.pub(topic, " two  spaces ")
            i6 = p.event(topic, "x.y-z", b"ends in a break\n")
        events = [
            "id: %d\ndata: hello\n\n" % i1,
            "id: %d\nevent: alert\ndata: first\ndata: second\ndata: third\n\n" % i2,
            "id: %d\ndata: lone\ndata: cr\n\n" % i3,
            "id: %d\ndata: \n\n" % i4,
            "id: %d\ndata:  two  spaces \n\n" % i5,
            "id: %d\nevent: x.y-z\ndata: ends in a break\ndata: \n\n" % i6,
        ]
        want = {}
        for name, o in openers.items():
            if name == "h11raw":      # one chunk per event, then the last chunk
                want[name] = ("".join("%x\r\n%s\r\n" % (len(e), e) for e in [o] + events)
                              + "0\r\n\r\n").encode()
            else:
                want[name] = (o + "".join(events)).encode()
        # all delivered, then the broker ends the streams (SIGTERM)
        for name in runs:
            want_len = len(want[name]) - (5 if name == "h11raw" else 0)
            deadline = time.monotonic() + 5
            while len(content(name)) < want_len and time.monotonic() < deadline:
                time.sleep(0.02)
        rc, _ = b.stop()
        eq(rc, 0, "broker exit status after SIGTERM")
        for name, (proc, bf, body, head) in runs.items():
            try:
                crc = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                kill_pid(proc)
                raise AssertionError("curl %s did not end when the broker stopped" % name)
            bf.close()
            eq(crc, 0, "curl %s exit status" % name)

    eq(content("h11"), want["h11"], "curl --http1.1 body")
    eq(content("h11raw"), want["h11raw"], "curl --http1.1 --raw body (one chunk per event)")
    eq(content("h10"), want["h10"], "curl --http1.0 body")
    for name, chunked in (("h11", True), ("h10", False)):
        with open(runs[name][3], "rb") as f:
            text = f.read().decode("latin-1")
        lines = text.split("\r\n")
        check(lines[0].startswith("HTTP/1.1 200 "), "%s status line %r" % (name, lines[0]))
        hdrs = {}
        for l in lines[1:]:
            if l:
                k, _, v = l.partition(":")
                hdrs[k.strip().lower()] = v.strip()
        eq(hdrs.get("content-type"), "text/event-stream", "%s Content-Type" % name)
        eq(hdrs.get("cache-control"), "no-cache", "%s Cache-Control" % name)
        eq(hdrs.get("transfer-encoding"), "chunked" if chunked else None,
           "%s Transfer-Encoding" % name)
        eq(hdrs.get("connection"), "keep-alive" if chunked else None, "%s Connection" % name)
        eq(hdrs.get("access-control-allow-origin"), None, "%s CORS header without --cors-origin"
           % name)
