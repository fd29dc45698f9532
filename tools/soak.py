#!/usr/bin/env python3
"""
soak.py - mixed-load soak test of spoutd (issue 7).

    tools/soak.py --duration 900                  start build/spoutd ($SPOUTD) and soak it
    tools/soak.py --duration 60 --spoutd build/asan/spoutd
    tools/soak.py --http 127.0.0.1:8080 --pub 127.0.0.1:7400 [--pid N] [--log F]
                                                  soak a broker that is already running
                                                  (start it with the flags in BROKER_FLAGS
                                                  below, or the shed check may not hold)

Python 3 standard library only (plus the integration harness's helpers and,
when it is built, build/spout-bench). For --duration seconds it runs, all at
once, each part in its own process(es):

  healthy    long-lived subscribers on single topics, several topics, the
             patterns soak.* / soak.> / soak.*.x, over HTTP/1.1 and 1.0, two of
             them reconnecting with Last-Event-ID (header and ?lastEventId=),
             two joining mid-run; source addresses 127.0.0.2-9
  publishers PUB one at a time, EVENT (typed, multi-line), pipelined batches
             with bad commands mixed in, and a 1 KB "heavy" stream; steady
             bounded rates; they reconnect periodically (QUIT, close, close
             in the middle of a command, commands pipelined after QUIT)
  churn      subscribe/unsubscribe cycles: abort before the response head
             (FIN, RST, half a request, nothing sent), mid-stream (FIN, RST),
             HTTP/1.0, Last-Event-ID resumes; 127.0.0.10-29
  slow       tiny receive buffers read 256 bytes at a time (shed by the write
             timeout), and readers that keep reading but lag behind their
             stream (shed by the queue bound)
  stopped    client processes that get SIGSTOP, then SIGCONT or SIGKILL
  bad        malformed HTTP, oversized heads, bad topics, slow heads (408),
             bad publisher commands: each answer is checked and counted
  bench      build/spout-bench: checked subscribers (lost/dup/order) plus
             subscribers that never read (skipped with --no-bench)

Then it stops the load, waits (bounded) for the connections to close and
asserts:

  - every healthy subscriber received exactly the events published on its
    topics (the ids the publishers got back in "OK <id>", which the SSE id:
    field carries), once each, in order, with the published type and data;
    a subscriber that joined mid-run got a contiguous suffix that includes
    every event sent after its response head; every resume was exact (no
    spout-gap, nothing missing or repeated);
  - churn, slow and stopped clients only ever saw contiguous runs of their
    topics' events (a shed ends a stream, it never punches holes), and exact
    resumes when they resumed;
  - events whose command was cut off, or pipelined after QUIT, never appear;
  - every bad request got the answer it should (HTTP status / ERR reason);
  - spout-bench's checked subscribers lost nothing (exit status 0);
  - slow/stopped clients were shed (the load really exercised shedding);
  - open fds return exactly to the baseline, no connection, publisher or
    topic is left, and RSS returns to within the tolerance below;
  - spoutd is still alive, answers /readyz 200, and its log has no sanitizer
    report (also after it exits, when soak.py started it: LeakSanitizer).

It prints a summary and exits 0 only if every assertion held (1 if one
failed, 2 on a usage error). Every loop is bounded in count and time, each
child process has its own deadline and dies with this one, and the whole run
stops itself at duration + HARD_MARGIN seconds. Only processes started here
are signalled, by PID.
"""
import argparse
import array
import ctypes
import json
import os
import random
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
import harness  # noqa: E402

# ------------------------------------------------------------------ topology

HEALTHY_TOPICS = ["soak.t%d" % i for i in range(6)]
HEAVY = "soak.heavy"          # 1 KB events at a steady rate: fills slow clients
DEEP = "soak.deep.x"          # two segments below soak: soak.* must not match it
NOISE = ["other.n%d" % i for i in range(8)]   # nobody healthy subscribes
MARKER_TOPICS = HEALTHY_TOPICS + [HEAVY, DEEP]
MARK = "__END__ "             # the end-of-run marker payload prefix

# Broker flags for a broker soak.py starts. --write-timeout-ms 2000 sheds the
# stopped clients quickly; --queue 64 lets the lagging readers (which do make
# write progress) reach the queue bound, so both shed paths run (the bound
# counts only lag beyond the socket buffers, which healthy readers never
# fill); --history-bytes bounds what history may keep (so the
# RSS tolerance below has a known term for it); --header-timeout-ms 2000 makes
# the slow-head (408) bad requests short; heartbeats exercise the idle path.
BROKER_FLAGS = ["--write-timeout-ms", "2000", "--queue", "64", "--history-bytes", str(4 << 20),
                "--header-timeout-ms", "2000", "--heartbeat-ms", "1000"]

HARD_MARGIN = 180             # s past --duration after which everything stops
SETTLE_S = 30                 # bound on waiting for fds/connections to settle

# RSS tolerance. jemalloc builds: final RSS <= baseline + history budget +
# RSS_SLACK_MB, and the application's live allocations (jemalloc's
# stats.allocated) <= baseline + what history reports holding + ALLOC_SLACK_MB.
#
# Why this is fair: the baseline is taken right after /readyz turns 200, before
# any connection, so the final figure legitimately includes
#  (a) history: up to --history (100) events per topic, bounded in bytes by
#      --history-bytes (4 MiB here; spout_history_budget_bytes); events stay
#      for --history-ttl (1 h), i.e. to the end of any soak;
#  (b) pages jemalloc keeps after frees: dirty pages decay only as the arenas
#      see more activity, so after the load stops they mostly stay resident;
#  (c) per-thread caches, arenas, connection and topic tables grown to the
#      peak of the run.
# (b) and (c) are bounded by the peak working set, which the soak keeps small
# and constant (~120 connections; a slow consumer pins at most --queue 64
# events plus its socket buffers), not by the duration or the number of
# connections served: measured here, final - baseline is 2-3 MiB after 60 s.
# RSS_SLACK_MB (24) leaves room for allocator noise; a leak of ~1.5 KB per
# connection over a 15-minute run (~16k HTTP connections) would exceed it.
# The allocated-bytes check is the sharp one: it does not depend on page
# retention, and 2 MiB of slack (thread caches hold freed objects that still
# count as allocated) catches a leak of ~150 bytes per connection in 15 min.
#
# ASan builds (no jemalloc metrics): ASan's quarantine keeps freed memory
# (quarantine_size_mb, 256 MiB unless ASAN_OPTIONS says otherwise), so the RSS
# bound there is the quarantine plus the same terms; leaks are left to
# LeakSanitizer, which runs when soak.py stops the broker (its report fails
# the run). TSan builds: its shadow and race-detection metadata take several
# times the application memory they cover (measured: +14 MiB RSS in 60 s
# against +2.5 MiB with jemalloc), so the slack is TSAN_SLACK_FACTOR times
# larger; the RSS bound there only catches gross growth.
RSS_SLACK_MB = 24
ALLOC_SLACK_MB = 2
ASAN_QUARANTINE_MB = 256
TSAN_SLACK_FACTOR = 4

# Healthy subscriptions: (path, topics/patterns, mode, extra). mode: long =
# subscribed before the first publish, to the end; resume = like long, but it
# closes and resumes with Last-Event-ID every few seconds; late = joins mid-run.
HEALTHY = []
for _t in HEALTHY_TOPICS:
    HEALTHY.append(("/events/" + _t, [_t], "long", {}))
    HEALTHY.append(("/events/" + _t, [_t], "long", {"http10": True}))
HEALTHY += [
    ("/events?topic=soak.t0&topic=soak.t3&topic=soak.heavy",
     ["soak.t0", "soak.t3", HEAVY], "long", {}),
    ("/events/soak.*", ["soak.*"], "long", {}),
    ("/events?topic=soak.%3E", ["soak.>"], "long", {}),
    ("/events?topic=soak.t1&topic=soak.*", ["soak.t1", "soak.*"], "long", {}),
    ("/events/" + HEAVY, [HEAVY], "long", {}),
    ("/events/" + HEAVY, [HEAVY], "long", {"http10": True}),
    ("/events?topic=soak.t2&topic=soak.t4", ["soak.t2", "soak.t4"], "resume", {"via": "header"}),
    ("/events?topic=soak.t5&topic=" + DEEP, ["soak.t5", DEEP], "resume", {"via": "query"}),
    ("/events?topic=soak.*.x&topic=soak.t3", ["soak.*.x", "soak.t3"], "resume",
     {"via": "header"}),
    ("/events/soak.t1", ["soak.t1"], "late", {"start_frac": 0.3}),
    ("/events?topic=soak.*", ["soak.*"], "late", {"start_frac": 0.6}),
]

# Paths churn/slow/stopped clients use; topics None = an idle topic nobody
# publishes on (any event there is unexpected).
CLIENT_PATHS = [
    ("/events/soak.t0", ["soak.t0"]),
    ("/events/soak.t3", ["soak.t3"]),
    ("/events?topic=soak.t1&topic=soak.t5", ["soak.t1", "soak.t5"]),
    ("/events/soak.*", ["soak.*"]),
    ("/events/" + HEAVY, [HEAVY]),
    ("/events?topic=" + HEAVY + "&topic=soak.t2", [HEAVY, "soak.t2"]),
    ("/events/soak.t4", ["soak.t4"]),
    ("/events?topic=soak.t0&topic=soak.%3E", ["soak.t0", "soak.>"]),
]
for _k in range(20):
    CLIENT_PATHS.append(("/events/churn.c%d" % _k, ["churn.c%d" % _k]))
CHURN_PATHS = list(range(len(CLIENT_PATHS)))           # all of them
# slow readers: (path, SO_RCVBUF, bytes per read, seconds between reads).
# Trickle readers (tiny buffer, 256 B at a time) make no write progress that
# spoutd can see for seconds at a time: --write-timeout-ms sheds them. Lagging
# readers read 30 KB once a second, steadily but slower than their stream
# (soak.> ~55 KB/s, heavy 40 KB/s): their queue passes --queue (overflow).
SLOW_SLOTS = [(4, 2048, 256, 0.2), (5, 2048, 256, 0.2),
              (7, 16384, 30000, 1.0), (4, 16384, 30000, 1.0)]
STOPPED_PATHS = [4, 5, 6]                              # heavy, heavy+t2, light t4


def topic_matches(pat, topic):
    ps, ts = pat.split("."), topic.split(".")
    for i, p in enumerate(ps):
        if p == ">":
            return i == len(ps) - 1 and len(ts) > i
        if i >= len(ts):
            return False
        if p != "*" and p != ts[i]:
            return False
    return len(ts) == len(ps)


def matches_any(pats, topic):
    return any(topic_matches(p, topic) for p in pats)


def visible(payload):
    """What an SSE client gets as data for a payload: line breaks normalised."""
    return payload.replace("\r\n", "\n").replace("\r", "\n")


def ev_crc(etype, data):
    return zlib.crc32(((etype or "") + "\0" + data).encode("utf-8", "replace"))


def now():
    return time.monotonic()


def die_with_parent():
    """preexec_fn: SIGKILL this child when soak.py dies (PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


_harness_spawn = harness.spawn


def _spawn_dying_with_us(argv, **kw):
    """harness.Broker starts spoutd through harness.spawn: give it
    PR_SET_PDEATHSIG too, so a SIGKILLed soak.py leaves no broker behind."""
    kw.setdefault("preexec_fn", die_with_parent)
    return _harness_spawn(argv, **kw)


harness.spawn = _spawn_dying_with_us


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    os.replace(tmp, path)


def child_setup(cfg):
    """Common start of a role: its own hard deadline (default SIGALRM action
    ends the process), seeded randomness."""
    raise_nofile()
    left = cfg["t_hard"] - now()
    signal.alarm(max(1, int(left) + 1))
    random.seed(cfg["seed"])


# ------------------------------------------------------------------ received-events record

class Received:
    """The events one client connection saw: ids and CRCs (compact arrays),
    plus anomalies."""

    def __init__(self):
        self.ids = array.array("q")
        self.crcs = array.array("L")
        self.gaps = []          # spout-gap bodies
        self.noid = 0           # events without an id: field (other than spout-gap)
        self.markers = set()

    def take(self, c):
        for ev in c.take_events():
            if ev.event == "spout-gap":
                self.gaps.append(ev.data)
                continue
            if not ev.has_id:
                self.noid += 1
                continue
            try:
                i = int(ev.id)
            except ValueError:
                self.noid += 1
                continue
            self.ids.append(i)
            self.crcs.append(ev_crc(ev.event, ev.data))
            if ev.data.startswith(MARK):
                self.markers.add(ev.data[len(MARK):])

    def slice_record(self):
        """Summary for a client whose events must form a contiguous run."""
        ids = self.ids
        incr = all(ids[k] < ids[k + 1] for k in range(len(ids) - 1))
        r = {"first": ids[0] if ids else None, "last": ids[-1] if ids else None,
             "n": len(ids), "incr": incr, "crcsum": sum(self.crcs) & 0xFFFFFFFF,
             "gaps": len(self.gaps), "noid": self.noid}
        if self.gaps:
            # after a spout-gap (evicted) each topic resumes from what its own
            # history still holds, so only per-topic runs are contiguous
            r["ids"] = ids.tolist()
            r["crcs"] = self.crcs.tolist()
        return r


def open_sse(cfg, path, src, http10=False, rcvbuf=None, lei=None, via="header"):
    extra = ""
    if lei is not None:
        if via == "header":
            extra = "Last-Event-ID: %d\r\n" % lei
        else:
            path = path + ("&" if "?" in path else "?") + "lastEventId=%d" % lei
    return harness.SSEClient(cfg["http_port"], path, http10=http10, host=cfg["host"], src=src,
                             rcvbuf=rcvbuf, extra_headers=extra, connect_timeout=10)


# ------------------------------------------------------------------ role: healthy subscribers

def role_healthy(cfg):
    child_setup(cfg)
    sel = selectors.DefaultSelector()
    conns = []
    errors = []
    for spec in cfg["conns"]:
        conns.append({"spec": spec, "c": None, "rx": Received(), "heads": [], "resumes": 0,
                      "server_ends": [], "done": False, "next_resume": None,
                      "want_markers": set(t for t in MARKER_TOPICS
                                          if matches_any(spec["topics"], t)),
                      "errors": []})

    def connect(st, lei=None):
        sp = st["spec"]
        try:
            c = open_sse(cfg, sp["path"], sp["src"], http10=sp.get("http10", False), lei=lei,
                         via=sp.get("via", "header"))
        except OSError as e:
            st["errors"].append("connect: %s" % e)
            return False
        st["c"] = c
        st["t_req"] = now()
        sel.register(c, selectors.EVENT_READ, st)
        return True

    def schedule_resume(st):
        if st["spec"]["mode"] == "resume":
            st["next_resume"] = now() + random.uniform(2.0, 6.0)

    for st in conns:
        if st["spec"]["mode"] != "late":
            connect(st)
            schedule_resume(st)
    ready_written = False
    until = None          # (t_pub_start, t_until) once publishing has started
    until_file = cfg["out"] + ".until"
    markers_file = cfg["out"] + ".markers"   # written once the end markers are out
    give_up = float("inf")

    def finished(st):
        if st["done"]:
            return True
        return st["c"] is None and bool(st["errors"] or st["server_ends"])

    while now() < cfg["t_hard"] - 3:
        t = now()
        if until is None and ready_written and os.path.exists(until_file):
            with open(until_file) as f:
                u = json.load(f)
            until = (u["t_pub_start"], u["t_until"])
            for st in conns:
                sp = st["spec"]
                if sp["mode"] == "late":
                    sp["start_at"] = until[0] + sp["start_frac"] * (until[1] - until[0])
        t_until = until[1] if until else float("inf")
        # late joiners
        for st in conns:
            sp = st["spec"]
            if sp["mode"] == "late" and st["c"] is None and not st["heads"] and \
                    not st["errors"] and until is not None and t >= sp["start_at"]:
                connect(st)
        # resumes (only with at least one event seen: its id is the resume point)
        for st in conns:
            if (st["next_resume"] is not None and t >= st["next_resume"] and st["c"] is not None
                    and st["c"].head is not None and len(st["rx"].ids) and
                    t < t_until and not st["done"]):
                c = st["c"]
                sel.unregister(c)
                try:
                    c.pump()
                    st["rx"].take(c)
                except AssertionError as e:
                    st["errors"].append("protocol: %s" % e)
                if c.end is not None:
                    st["server_ends"].append(c.end)
                c.close(rst=random.random() < 0.3)
                st["c"] = None
                if c.end is not None:
                    st["next_resume"] = None
                    continue
                st["resumes"] += 1
                if connect(st, lei=st["rx"].ids[-1]):
                    schedule_resume(st)
                else:
                    st["next_resume"] = None
        for key, _ in sel.select(0.1):
            st = key.data
            c = st["c"]
            try:
                c.pump()
                if c.head is not None and len(st["heads"]) < 1 + st["resumes"]:
                    st["heads"].append(now())
                    if c.head.status != 200:
                        st["errors"].append("status %d" % c.head.status)
                st["rx"].take(c)
            except AssertionError as e:        # protocol error from the parser
                st["errors"].append("protocol: %s" % e)
                c.end = c.end or "protocol"
            if c.end is not None:
                st["server_ends"].append(c.end)
                sel.unregister(c)
                c.close()
                st["c"] = None
                st["next_resume"] = None
            if st["want_markers"] <= st["rx"].markers:
                st["done"] = True
        for st in conns:
            c = st["c"]
            if c is not None and c.head is None and now() - st["t_req"] > 30:
                st["errors"].append("no response head within 30 s")
                sel.unregister(c)
                c.close()
                st["c"] = None
        if not ready_written and all(st["heads"] for st in conns
                                     if st["spec"]["mode"] != "late"):
            open(cfg["out"] + ".ready", "w").close()
            ready_written = True
        if until is not None and now() > t_until and all(finished(st) for st in conns):
            break
        if give_up == float("inf") and os.path.exists(markers_file):
            # the markers are published: wait a bounded time for them, then
            # report whatever is still missing
            give_up = now() + cfg["marker_wait"]
        if now() > give_up:
            break
    res = []
    for st in conns:
        if st["c"] is not None:
            st["c"].close()
        rx = st["rx"]
        res.append({"path": st["spec"]["path"], "topics": st["spec"]["topics"],
                    "mode": st["spec"]["mode"], "http10": st["spec"].get("http10", False),
                    "heads": st["heads"], "ids": rx.ids.tolist(), "crcs": rx.crcs.tolist(),
                    "gaps": rx.gaps, "noid": rx.noid, "resumes": st["resumes"],
                    "server_ends": st["server_ends"],
                    "markers_missing": sorted(st["want_markers"] - rx.markers),
                    "errors": st["errors"] + errors})
    write_json(cfg["out"], {"conns": res})


# ------------------------------------------------------------------ role: publishers

PAYLOAD_LINES = ["line two", "  indented three", "", "data: not a field", "id: 7 neither",
                 "ümlaut → ünicode", ": not a comment", "last\r\nline (crlf inside)"]
EVENT_TYPES = ["update", "alert", "-", "x.y:z", "t_" + "q" * 60]

# Bad commands and the replies they must get (protocol.md 1.3): each is
# consumed completely, so the connection stays in step.
BAD_COMMANDS = [
    (b"pub soak.t0 lower\n", ["ERR unknown command"]),
    (b"\n", ["ERR empty line"]),
    (b"PING x\n", ["ERR unexpected argument"]),
    (b"QUIT now\n", ["ERR unexpected argument"]),
    (b"PUB\n", ["ERR missing topic"]),
    (b"PUB soak..t0 x\n", ["ERR empty topic segment"]),
    (b"PUB soak/t0 x\n", ["ERR invalid character in topic"]),
    (b"PUB soak.* x\n", ["ERR invalid character in topic"]),
    (b"PUB " + b"a" * 129 + b" x\n", ["ERR topic too long"]),
    (b"PUB soak.t0 nul\x00byte\n", ["ERR NUL byte in line"]),
    (b"EVENT soak.t0 bad\x7ftype 3\nabc\n", ["ERR invalid event type"]),
    (b"EVENT soak.t0 t 5a\n", ["ERR invalid payload length"]),
    (b"EVENT soak.t0 t\n", ["ERR missing payload length"]),
    (b"EVENT soak.a..b t 3\nPUB\n", ["ERR empty topic segment"]),
    (b"AUTH sesame\n", ["ERR auth not enabled"]),
    (b"PING\n", ["PONG"]),
]
BIG_BAD_COMMANDS = [
    (b"PUB soak.t0 " + b"L" * 70000 + b"\n", ["ERR line too long"]),
    (b"EVENT soak.t0 big 70000\n" + b"P" * 70000 + b"\n", ["ERR payload too large"]),
]


def role_publisher(cfg):
    child_setup(cfg)
    mode = cfg["mode"]
    name = cfg["name"]
    events = []           # [id, topic, type, crc, t_send]
    stats = {"connections": 0, "quit": 0, "close": 0, "half": 0, "after_quit": 0,
             "commands": 0, "bad": {}, "bad_mismatch": []}
    errors = []
    p = None
    left_on_conn = 0
    seq = 0
    rate = cfg["rate"]
    next_t = now()
    max_events = int(rate * (cfg["t_until"] - now()) * 1.2) + 100
    timeout = cfg["reply_timeout"]

    def new_payload():
        nonlocal seq
        seq += 1
        if mode in ("single", "pipeline"):
            return "%s-%d %s" % (name, seq, "x" * random.randint(0, 120))
        if mode == "heavy":
            s = "%s-%d " % (name, seq)
            return s + "h" * (1000 - len(s))
        lines = ["%s-%d" % (name, seq)] + random.sample(PAYLOAD_LINES, random.randint(1, 4))
        return "\n".join(lines)

    def pick_topic():
        r = random.random()
        if mode == "heavy":
            return HEAVY
        if r < 0.12:
            return random.choice(NOISE)
        if r < 0.22 and mode != "single":
            return DEEP
        return random.choice(HEALTHY_TOPICS)

    def command():
        """A (bytes, meta) publish command. meta: (topic, type, crc)."""
        topic = pick_topic()
        payload = new_payload()
        use_event = mode == "event" or (mode == "pipeline" and random.random() < 0.4)
        if use_event:
            etype = random.choice(EVENT_TYPES)
            pb = payload.encode()
            cmd = b"EVENT %s %s %d\n" % (topic.encode(), etype.encode(), len(pb)) + pb + \
                (b"\r\n" if random.random() < 0.3 else b"\n")
            t = None if etype == "-" else etype
            return cmd, (topic, t, ev_crc(t, visible(payload)))
        return (b"PUB %s %s\n" % (topic.encode(), payload.encode()),
                (topic, None, ev_crc(None, visible(payload))))

    def hang_up():
        nonlocal p
        how = random.choice(["quit", "quit", "close", "half", "after_quit"])
        try:
            if how == "quit":
                p.send_raw(b"QUIT\n")
                p.expect_line("OK bye", timeout)
                p.expect_closed(timeout)
            elif how == "after_quit":
                # A command after QUIT is never executed: if it were, its event
                # would reach the healthy subscribers of soak.t2 with an id
                # nobody got back, and the check would fail.
                p.send_raw(b"QUIT\nPUB soak.t2 %s after QUIT must not publish\n" % name.encode())
                p.expect_line("OK bye", timeout)
                p.expect_closed(timeout)
            elif how == "half":
                # a connection closed in the middle of a command: dropped, no event
                p.send_raw(b"PUB soak.t1 %s-half never published" % name.encode())
                time.sleep(0.005)
            stats[how] += 1
        finally:
            p.close()
            p = None

    t_until = cfg["t_until"]
    try:
        while now() < t_until and len(events) < max_events:
            if p is None:
                p = harness.Publisher(cfg["pub_port"], host=cfg["host"], timeout=timeout)
                stats["connections"] += 1
                left_on_conn = random.randint(20, 200)
            batch = 1
            if mode == "pipeline":
                batch = random.randint(6, 16)
            elif mode == "heavy":
                batch = 4
            # pacing: a steady rate; a stall is not made up by a flood
            t = now()
            if next_t > t:
                time.sleep(min(next_t - t, max(0.0, t_until - t)))
            next_t = max(next_t + batch / rate, now() - 0.25)
            if now() >= t_until:
                break
            if mode in ("single", "event", "heavy") and batch == 1:
                cmd, meta = command()
                t_send = now()
                p.send_raw(cmd)
                i = p._ok_id(p.read_line(timeout), "%s publish" % name)
                events.append([i, meta[0], meta[1], meta[2], t_send])
                stats["commands"] += 1
            else:
                cmds, metas = [], []
                for _ in range(batch):
                    cmd, meta = command()
                    cmds.append(cmd)
                    metas.append(("pub", meta))
                if mode == "pipeline" and random.random() < 0.5:
                    bad, want = random.choice(BAD_COMMANDS)
                    if random.random() < 0.03:
                        bad, want = random.choice(BIG_BAD_COMMANDS)
                    k = random.randint(0, len(cmds))
                    cmds.insert(k, bad)
                    metas.insert(k, ("bad", want))
                t_send = now()
                p.send_raw(b"".join(cmds), timeout=timeout)
                for kind, meta in metas:
                    if kind == "pub":
                        i = p._ok_id(p.read_line(timeout), "%s pipelined publish" % name)
                        events.append([i, meta[0], meta[1], meta[2], t_send])
                        stats["commands"] += 1
                    else:
                        for w in meta:
                            got = p.read_line(timeout)
                            stats["bad"][w] = stats["bad"].get(w, 0) + 1
                            if got != w:
                                stats["bad_mismatch"].append([w, got])
            left_on_conn -= batch
            if left_on_conn <= 0:
                hang_up()
    except (AssertionError, OSError) as e:
        errors.append("%s: %s" % (type(e).__name__, e))
    if p is not None:
        try:
            p.send_raw(b"QUIT\n")
            p.expect_line("OK bye", timeout)
            stats["quit"] += 1
        except (AssertionError, OSError) as e:
            errors.append("final QUIT: %s" % e)
        p.close()
    write_json(cfg["out"], {"name": name, "mode": mode, "events": events, "stats": stats,
                            "errors": errors})


# ------------------------------------------------------------------ roles: churn, slow, stopped

def _client_record(path_idx, rx, head_t, end, extra=None):
    r = rx.slice_record()
    r.update({"p": path_idx, "t_head": head_t, "end": end})
    if extra:
        r.update(extra)
    return r


def role_churn(cfg):
    child_setup(cfg)
    sel = selectors.DefaultSelector()
    srcs = cfg["srcs"]
    kinds = ["abort_fin"] * 15 + ["abort_rst"] * 10 + ["partial"] * 8 + ["nothing"] * 4 + \
        ["stream"] * 45 + ["resume"] * 18
    stats = {}
    records = []
    errors = []
    last_id = {}          # path idx -> last id a stream saw (resume point)
    open_ = {}
    cycles = 0
    rate = cfg["rate"]
    next_t = now()
    max_cycles = int(rate * (cfg["t_until"] - now()) * 1.2) + 10
    k = 0
    while now() < cfg["t_until"] and cycles < max_cycles:
        t = now()
        if t >= next_t and len(open_) < cfg["concurrency"]:
            next_t = max(next_t + 1.0 / rate, t - 0.5)
            cycles += 1
            k += 1
            kind = random.choice(kinds)
            pi = random.choice(CHURN_PATHS)
            path = CLIENT_PATHS[pi][0]
            src = srcs[k % len(srcs)]
            stats[kind] = stats.get(kind, 0) + 1
            try:
                if kind in ("abort_fin", "abort_rst", "partial", "nothing"):
                    s = socket.socket()
                    s.bind((src, 0))
                    s.settimeout(10)
                    s.connect((cfg["host"], cfg["http_port"]))
                    req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
                    if kind == "partial":
                        s.sendall(req[:random.randint(1, len(req) - 2)])
                    elif kind != "nothing":
                        s.sendall(req)
                    if kind == "abort_rst":
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.close()
                    continue
                lei = None
                if kind == "resume" and pi in last_id:
                    lei = last_id[pi]
                http10 = kind == "stream" and random.random() < 0.2
                c = open_sse(cfg, path, src, http10=http10, lei=lei,
                             via=random.choice(["header", "query"]))
                st = {"c": c, "p": pi, "rx": Received(), "t0": now(), "head_t": None,
                      "close_at": None, "lei": lei, "kind": kind}
                open_[c.fileno()] = st
                sel.register(c, selectors.EVENT_READ, st)
            except OSError as e:
                errors.append("%s connect: %s" % (kind, e))
                if len(errors) > 50:
                    break
        for key, _ in sel.select(0.02):
            st = key.data
            c = st["c"]
            try:
                c.pump()
                st["rx"].take(c)
            except AssertionError as e:
                errors.append("protocol: %s" % e)
                c.end = c.end or "protocol"
            if c.head is not None and st["head_t"] is None:
                st["head_t"] = now()
                if c.head.status != 200:
                    errors.append("churn stream status %d" % c.head.status)
                st["close_at"] = now() + random.uniform(0.1, 2.0)
        t = now()
        for fd, st in list(open_.items()):
            c = st["c"]
            end = c.end
            if st["head_t"] is None and end is None and t - st["t0"] > 20:
                errors.append("churn: no response head within 20 s")
                end = "no-head"
            if end is not None or (st["close_at"] is not None and t >= st["close_at"]) or \
                    t >= cfg["t_until"]:
                sel.unregister(c)
                if end is None:
                    c.pump()
                    st["rx"].take(c)
                rst = random.random() < 0.4
                c.close(rst=rst)
                del open_[fd]
                rx = st["rx"]
                if len(rx.ids):
                    last_id[st["p"]] = rx.ids[-1]
                if st["head_t"] is not None:
                    records.append(_client_record(st["p"], rx, st["head_t"], c.end,
                                                  {"lei": st["lei"], "kind": st["kind"]}))
    for st in open_.values():
        st["c"].close()
    write_json(cfg["out"], {"stats": stats, "cycles": cycles, "records": records,
                            "errors": errors})


def role_readers(cfg):
    """slow (tiny buffers, tiny reads) or stopped (normal readers in a process
    that the orchestrator SIGSTOPs): on a close by the server, record and
    reconnect after a pause."""
    child_setup(cfg)
    slow = cfg["kind"] == "slow"
    sel = selectors.DefaultSelector()
    records, errors = [], []
    slots = []
    for k, sp in enumerate(cfg["slots"]):
        pi, rcvbuf, chunk, period = sp
        slots.append({"p": pi, "rcvbuf": rcvbuf, "chunk": chunk, "period": period,
                      "next_read": 0.0, "c": None, "retry_at": 0.0,
                      "src": cfg["srcs"][k % len(cfg["srcs"])]})
    opened = 0
    server_closed = 0

    def finish(sl, end):
        nonlocal server_closed
        c = sl["c"]
        try:
            sel.unregister(c)
        except (KeyError, ValueError):
            pass
        c.close()
        sl["c"] = None
        if end is not None:
            server_closed += 1
        if sl["head_t"] is not None:
            records.append(_client_record(sl["p"], sl["rx"], sl["head_t"], end))

    next_flush = now() + 1.0
    while now() < cfg["t_until"] and opened < cfg["max_opens"]:
        t = now()
        if t >= next_flush:
            # a stopped process may be SIGKILLed: what it saw up to its last
            # flush is still checked
            next_flush = t + 1.0
            write_json(cfg["out"], {"kind": cfg["kind"], "records": records, "errors": errors,
                                    "opened": opened, "server_closed": server_closed,
                                    "partial": True})
        for sl in slots:
            if sl["c"] is None and t >= sl["retry_at"]:
                try:
                    sl["c"] = open_sse(cfg, CLIENT_PATHS[sl["p"]][0], sl["src"],
                                       rcvbuf=sl["rcvbuf"])
                except OSError as e:
                    errors.append("connect: %s" % e)
                    sl["retry_at"] = t + 1.0
                    continue
                opened += 1
                sl["rx"] = Received()
                sl["head_t"] = None
                sl["t0"] = t
                if not slow:
                    sel.register(sl["c"], selectors.EVENT_READ, sl)
        if slow:
            # every <period> s, read at most <chunk> bytes from a connection
            nxt = min(sl["next_read"] for sl in slots)
            time.sleep(max(0.0, min(nxt - now(), 0.2, cfg["t_until"] - now())))
            t = now()
            for sl in slots:
                c = sl["c"]
                if c is None or t < sl["next_read"]:
                    continue
                sl["next_read"] = max(sl["next_read"] + sl["period"], t - 1.0)
                try:
                    b = c.sock.recv(sl["chunk"])
                    if not b:
                        c._set_end("eof")
                    else:
                        c._feed(b)
                except BlockingIOError:
                    pass
                except (ConnectionResetError, OSError):
                    c._set_end("reset")
                except AssertionError as e:
                    errors.append("protocol: %s" % e)
                    c._set_end("protocol")
        else:
            for key, _ in sel.select(0.1):
                sl = key.data
                try:
                    sl["c"].pump()
                except AssertionError as e:
                    errors.append("protocol: %s" % e)
                    sl["c"]._set_end("protocol")
        t = now()
        for sl in slots:
            c = sl["c"]
            if c is None:
                continue
            sl["rx"].take(c)
            if c.head is not None and sl["head_t"] is None:
                sl["head_t"] = t
                if c.head.status != 200:
                    errors.append("status %d" % c.head.status)
            if c.end is not None:
                finish(sl, c.end)
                sl["retry_at"] = t + random.uniform(0.3, 1.5)
            elif sl["head_t"] is None and t - sl["t0"] > 30:
                errors.append("no response head within 30 s")
                finish(sl, None)
                sl["retry_at"] = t + 1.0
    for sl in slots:
        if sl["c"] is not None:
            finish(sl, None)
    write_json(cfg["out"], {"kind": cfg["kind"], "records": records, "errors": errors,
                            "opened": opened, "server_closed": server_closed})


# ------------------------------------------------------------------ role: bad requests

def _big_head():
    pad = "".join("X-Pad-%03d: %s\r\n" % (k, "v" * 100) for k in range(85))
    return ("GET /events/soak.t0 HTTP/1.1\r\nHost: x\r\n" + pad + "\r\n").encode()


# (name, request bytes, expected HTTP status) - docs/protocol.md, test_bad_input.py
BAD_HTTP = [
    ("garbage", b"\x00\x01\xfe\xff garbage\r\n\r\n", 400),
    ("words", b"hello there\r\n\r\n", 400),
    ("lowercase method", b"get /events/soak.t0 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("no host", b"GET /events/soak.t0 HTTP/1.1\r\n\r\n", 400),
    ("header without colon", b"GET /events/soak.t0 HTTP/1.1\r\nHost x\r\n\r\n", 400),
    ("empty segment", b"GET /events/soak..t0 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("space in topic", b"GET /events/soak%20t0 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad percent", b"GET /events/soak.%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("topic too long", ("GET /events/%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("a" * 129)).encode(), 400),
    ("bad pattern", b"GET /events/soak.t* HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad pattern 2", b"GET /events/soak.%3E.x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("no topic", b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("too many topics", ("GET /events?%s HTTP/1.1\r\nHost: x\r\n\r\n"
                         % "&".join("topic=soak.t%d" % k for k in range(17))).encode(), 400),
    ("unknown path", b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ("post", b"POST /events/soak.t0 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
    ("target too long", ("GET /events/%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("a" * 4200)).encode(),
     414),
    ("oversized head", _big_head(), 431),
    ("http/2", b"GET /events/soak.t0 HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
]
SLOW_HEAD = ("slow head", b"GET /events/soak.t0 HTTP/1.1\r\nHost: x\r\n", 408)


def role_bad(cfg):
    """Bad requests at a steady rate, cycling through every case in a
    shuffled order, so each is covered evenly: HTTP cases, a head that never
    completes (408), a head cut off by the client (no answer), bad publisher
    commands on a long-lived publisher connection (replaced now and then)."""
    child_setup(cfg)
    answers = {}
    mismatches = []
    errors = []
    rate = cfg["rate"]
    n = 0
    max_n = int(rate * (cfg["t_until"] - now()) * 1.2) + 10
    next_t = now()
    pub = None
    srcs = cfg["srcs"]
    cases = [("http",) + c for c in BAD_HTTP] + [("http",) + SLOW_HEAD, ("cut",)] + \
        [("line", c, w) for c, w in BAD_COMMANDS[:-1]] + \
        [("line", c, w) for c, w in BIG_BAD_COMMANDS]
    order = []
    while now() < cfg["t_until"] and n < max_n:
        t = now()
        if next_t > t:
            time.sleep(min(next_t - t, cfg["t_until"] - t))
        next_t = max(next_t + 1.0 / rate, now() - 1.0)
        n += 1
        if not order:
            order = list(cases)
            random.shuffle(order)
        case = order.pop()
        try:
            if case[0] == "http":
                _, name, req, want = case
                res = harness.raw_http(cfg["http_port"], req, 10, host=cfg["host"],
                                       src=srcs[n % len(srcs)])
                got = "HTTP %s" % res.status if res.status is not None else res.how
                key = "HTTP %d" % want
            elif case[0] == "cut":
                # half a request, then gone: nothing to answer; must not leak
                s = socket.socket()
                s.bind((srcs[n % len(srcs)], 0))
                s.settimeout(10)
                s.connect((cfg["host"], cfg["http_port"]))
                s.sendall(b"GET /events/soak.t0 HTTP/1.1\r\nHost: x\r\nX-Junk: \xff\xfe")
                s.close()
                key = "(no answer: head cut by the client)"
                answers[key] = answers.get(key, 0) + 1
                continue
            else:
                _, cmd, want = case
                if pub is None:
                    pub = harness.Publisher(cfg["pub_port"], host=cfg["host"], timeout=20)
                pub.send_raw(cmd, timeout=20)
                name = "line %r" % cmd[:24]
                got = pub.read_line(20)
                key = want[0]
                if random.random() < 0.05:
                    pub.send_raw(b"QUIT\n")
                    pub.expect_line("OK bye", 20)
                    pub.close()
                    pub = None
            answers[key] = answers.get(key, 0) + 1
            if got != key:
                mismatches.append([name, key, got])
        except (AssertionError, OSError) as e:
            errors.append("%s: %s" % (type(e).__name__, e))
            if pub is not None:
                pub.close()
                pub = None
            if len(errors) > 20:
                break
    if pub is not None:
        pub.close()
    write_json(cfg["out"], {"answers": answers, "mismatches": mismatches, "errors": errors,
                            "sent": n})


ROLES = {"healthy": role_healthy, "publisher": role_publisher, "churn": role_churn,
         "readers": role_readers, "bad": role_bad}


# ------------------------------------------------------------------ orchestrator

class Child:
    def __init__(self, name, role, cfg, workdir):
        self.name = name
        self.role = role
        self.cfg = dict(cfg)
        self.cfg["out"] = os.path.join(workdir, name + ".json")
        self.cfg_path = os.path.join(workdir, name + ".cfg")
        write_json(self.cfg_path, self.cfg)
        self.err_path = os.path.join(workdir, name + ".stderr")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", role,
                                      "--config", self.cfg_path],
                                     stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=self._err, preexec_fn=die_with_parent)
        self.pid = self.proc.pid
        self.stopped = False
        self.killed = False

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        self.signal(signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._err.close()

    def result(self):
        try:
            with open(self.cfg["out"]) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def stderr_tail(self, n=8):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()[-n:]
        except OSError:
            return []


class Target:
    """The broker under test: one started here (Broker) or an external one."""

    def __init__(self, args):
        self.broker = None
        self.pid = args.pid
        self.log_path = args.log
        if args.http:
            h, _, p = args.http.rpartition(":")
            self.host, self.http_port = h, int(p)
            h2, _, p2 = args.pub.rpartition(":")
            self.pub_host, self.pub_port = h2, int(p2)
            if self.pub_host != self.host:
                raise SystemExit("soak.py: --http and --pub must be on the same host")
        else:
            harness.CURRENT["name"] = "soak"
            self.broker = harness.Broker(*(BROKER_FLAGS + args.spoutd_arg), stop_timeout=30,
                                         start_timeout=30)
            self.broker.__enter__()
            self.host = self.broker.host
            self.http_port, self.pub_port = self.broker.http_port, self.broker.pub_port
            self.pid = self.broker.pid
            self.log_path = self.broker.log_path
        self.sanitized = None

    def metrics(self):
        r = harness.raw_http(self.http_port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 10,
                             host=self.host)
        if r.status != 200:
            raise AssertionError("GET /metrics: %s" % r.describe())
        return harness.parse_metrics(r.body.decode("utf-8", "replace"))

    def alive(self):
        if self.broker is not None:
            return self.broker.alive()
        if self.pid:
            return os.path.exists("/proc/%d" % self.pid)
        return True

    def rss_kb(self, m=None):
        if self.pid:
            try:
                with open("/proc/%d/status" % self.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            return int(line.split()[1])
            except OSError:
                return None
        m = m or self.metrics()
        return int(m.get("spout_process_resident_bytes", 0) // 1024)

    def nfds(self, m=None):
        if self.pid:
            try:
                return len(os.listdir("/proc/%d/fd" % self.pid))
            except OSError:
                return None
        m = m or self.metrics()
        return int(m.get("spout_open_fds", -1))

    def sanitizer_build(self):
        """'asan', 'tsan' or None, from the libraries the process mapped."""
        if self.sanitized is None:
            self.sanitized = ""
            if self.pid:
                try:
                    with open("/proc/%d/maps" % self.pid) as f:
                        maps = f.read()
                    if "libasan" in maps:
                        self.sanitized = "asan"
                    elif "libtsan" in maps:
                        self.sanitized = "tsan"
                except OSError:
                    pass
        return self.sanitized or None

    def sanitizer_report(self):
        if self.broker is not None:
            return self.broker.sanitizer_report()
        if not self.log_path:
            return None
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return None
        for line in text.splitlines():
            if any(m in line for m in harness.Broker.SANITIZER_MARKS):
                return line.strip()
        return None


def stable_fds(tg, tries=40):
    """The fd count once it has not changed for 3 samples 50 ms apart."""
    last, same = None, 0
    for _ in range(tries):
        n = tg.nfds()
        if n == last:
            same += 1
            if same >= 2:
                return n
        else:
            last, same = n, 0
        time.sleep(0.05)
    return last


def mib(kb):
    return "%.1f MiB" % (kb / 1024.0) if kb is not None else "?"


def labelled(m, name):
    out = {}
    for k, v in m.items():
        if k.startswith(name + "{"):
            lab = k[len(name) + 1:-1]
            lab = lab.split("=", 1)[1].strip('"') if "=" in lab else lab
            out[lab] = v
    return out


def diff_labelled(m1, m0, name):
    a, b = labelled(m1, name), labelled(m0, name)
    return {k: int(v - b.get(k, 0)) for k, v in sorted(a.items()) if v - b.get(k, 0)}


class Soak:
    def __init__(self, args):
        self.args = args
        self.checks = []          # (ok, what, detail)
        self.notes = []
        self.children = []
        self.tg = None
        self.workdir = None
        self.t_start = now()
        self.peak_rss = 0
        self.peak_fds = 0
        self.peak_open = 0
        self.stop_stats = {"SIGSTOP": 0, "SIGCONT": 0, "SIGKILL": 0}
        self.seed = args.seed if args.seed is not None else random.randrange(1 << 30)
        random.seed(self.seed)

    def check(self, ok, what, detail=""):
        self.checks.append((bool(ok), what, detail))
        return ok

    # -- children
    def spawn(self, name, role, cfg):
        base = {"host": self.tg.host, "http_port": self.tg.http_port, "pub_port": self.tg.pub_port,
                "t_until": self.t_until, "t_hard": self.t_hard - 10,
                "seed": random.randrange(1 << 30)}
        base.update(cfg)
        c = Child(name, role, base, self.workdir)
        self.children.append(c)
        return c

    def sample(self):
        r, n = self.tg.rss_kb(), self.tg.nfds()
        if r:
            self.peak_rss = max(self.peak_rss, r)
        if n:
            self.peak_fds = max(self.peak_fds, n)

    def run(self):
        a = self.args
        self.workdir = tempfile.mkdtemp(prefix="soak-", dir=a.workdir)
        self.tg = Target(a)
        tg = self.tg
        slow = 1.0
        if tg.sanitizer_build():
            slow = 3.0
        self.slow = slow
        self.reply_timeout = 30 * slow
        # ---- baseline: right after /readyz, nothing connected
        time.sleep(0.3)
        self.base_fds = stable_fds(tg)
        self.base_rss = tg.rss_kb()
        self.m0 = tg.metrics()
        self.base_fds = stable_fds(tg)
        self.peak_rss, self.peak_fds = self.base_rss or 0, self.base_fds or 0
        self.t_hard = self.t_start + a.duration + HARD_MARGIN
        # healthy subscribers first: publishing starts when all have their heads
        self.t_until = now() + a.duration + 30     # provisional; set below
        healthy_specs = []
        for k, (path, topics, mode, extra) in enumerate(HEALTHY):
            sp = {"path": path, "topics": topics, "mode": mode, "src": "127.0.0.%d" % (2 + k % 8)}
            sp.update(extra)
            healthy_specs.append(sp)
        groups = [healthy_specs[0::2], healthy_specs[1::2]]
        hs = []
        for gi, g in enumerate(groups):
            hs.append(self.spawn("healthy%d" % gi, "healthy", {"conns": g,
                                                                "marker_wait": 15 * slow}))
        self.healthy = hs
        deadline = now() + 30 * slow
        while now() < deadline and not all(os.path.exists(h.cfg["out"] + ".ready") for h in hs):
            if not all(h.alive() for h in hs):
                break
            time.sleep(0.05)
        if not self.check(all(os.path.exists(h.cfg["out"] + ".ready") for h in hs),
                          "healthy subscribers connected before publishing",
                          "; ".join(" | ".join(h.stderr_tail()) for h in hs)):
            return self.finish()
        # Publishing starts now. The healthy processes learn when the load ends
        # (and so when the late joiners join) from <out>.until.
        self.t_pub_start = now()
        self.t_until = self.t_pub_start + a.duration
        for h in hs:
            write_json(h.cfg["out"] + ".until", {"t_pub_start": self.t_pub_start,
                                                 "t_until": self.t_until})
        self.start_load()
        self.monitor()
        self.end_load()
        return self.finish()

    def start_load(self):
        a, slow = self.args, self.slow
        rt = self.reply_timeout
        pubs = [("pubA", "single", 30), ("pubB", "event", 20), ("pubC", "pipeline", 30),
                ("pubH", "heavy", 40)]
        self.pubs = [self.spawn(n, "publisher", {"name": n, "mode": m, "rate": r * a.rate,
                                                 "reply_timeout": rt})
                     for n, m, r in pubs]
        self.churn = self.spawn("churn", "churn", {
            "rate": 15 * a.rate, "concurrency": 12,
            "srcs": ["127.0.0.%d" % k for k in range(10, 30)]})
        self.slowp = self.spawn("slow", "readers", {
            "kind": "slow", "slots": SLOW_SLOTS,
            "srcs": ["127.0.0.%d" % k for k in range(30, 34)], "max_opens": 10000})
        self.stopped_seq = 0
        self.stopped_state = []
        for _ in range(3):
            self.stopped_state.append(self.new_stopped())
        self.bad = self.spawn("bad", "bad", {"rate": 4 * a.rate,
                                             "srcs": ["127.0.0.%d" % k for k in range(50, 55)]})
        self.bench = None
        bench = a.bench
        if bench and os.access(bench, os.X_OK) and a.duration >= 20:
            d = max(5, a.duration - 15)
            argv = [bench, "--http", "%s:%d" % (self.tg.host, self.tg.http_port),
                    "--pub", "%s:%d" % (self.tg.host, self.tg.pub_port),
                    "-s", "60", "-t", "3", "--topic-prefix", "soakb", "-r", str(60 * a.rate),
                    "--size", "1024", "-d", str(d), "--slow", "6", "--slow-rcvbuf", "4096",
                    "--src-addrs", "127.0.0.40-127.0.0.49", "--procs", "1",
                    "--connect-timeout", str(int(30000 * slow)),
                    "--drain-ms", str(int(5000 * slow)),
                    "--max-seconds", str(int(d + 60 * slow)), "--expect-no-loss", "--json"]
            self.bench_out = open(os.path.join(self.workdir, "bench.json"), "wb")
            self.bench_err = open(os.path.join(self.workdir, "bench.stderr"), "wb")
            self.bench = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.bench_out,
                                          stderr=self.bench_err, preexec_fn=die_with_parent)
            self.bench_argv = argv
        elif bench:
            self.notes.append("spout-bench part skipped (%s not built, or duration < 20 s)"
                              % bench)

    def new_stopped(self):
        self.stopped_seq += 1
        k = self.stopped_seq
        c = self.spawn("stopped%d" % k, "readers", {
            "kind": "stopped", "slots": [(p, 4096, 0, 0) for p in STOPPED_PATHS],
            "srcs": ["127.0.0.%d" % (34 + k % 6)], "max_opens": 1000})
        return {"child": c, "state": "run", "at": now() + random.uniform(3, 6)}

    def step_stopped(self):
        t = now()
        for i, st in enumerate(self.stopped_state):
            c = st["child"]
            if t < st["at"]:
                continue
            if st["state"] == "run":
                if not c.alive():
                    continue
                c.signal(signal.SIGSTOP)
                c.stopped = True
                self.stop_stats["SIGSTOP"] += 1
                st["state"] = "stopped"
                # long enough for its socket buffers to fill at the heavy
                # topic's rate and then for --write-timeout-ms to pass
                st["at"] = t + random.uniform(12, 18)
            else:
                if random.random() < 0.6 or self.stop_stats["SIGKILL"] >= 40:
                    c.signal(signal.SIGCONT)
                    c.stopped = False
                    self.stop_stats["SIGCONT"] += 1
                    st["state"] = "run"
                    st["at"] = t + random.uniform(3, 6)
                else:
                    c.kill()
                    c.killed = True
                    c.stopped = False
                    self.stop_stats["SIGKILL"] += 1
                    if t + 8 < self.t_until:
                        self.stopped_state[i] = self.new_stopped()
                    else:
                        st["state"] = "gone"
                        st["at"] = float("inf")

    def monitor(self):
        last_m = 0
        died_reported = set()
        while now() < self.t_until:
            self.sample()
            self.step_stopped()
            if now() - last_m >= 5:
                last_m = now()
                try:
                    m = self.tg.metrics()
                    self.peak_open = max(self.peak_open, m.get("spout_connections_open", 0))
                except (AssertionError, OSError) as e:
                    self.notes.append("scrape during load failed: %s" % e)
            if not self.tg.alive():
                self.check(False, "spoutd alive during the load", "spoutd exited")
                break
            for c in self.children:
                if not c.alive() and not c.killed and c.name not in died_reported and \
                        c.result() is None:
                    died_reported.add(c.name)
                    self.notes.append("%s exited early (status %s): %s" % (
                        c.name, c.proc.returncode, " | ".join(c.stderr_tail(3))))
            time.sleep(min(0.5, max(0.0, self.t_until - now())))

    def end_load(self):
        slow = self.slow
        for st in self.stopped_state:     # nobody stays stopped
            if st["child"].stopped:
                st["child"].signal(signal.SIGCONT)
                st["child"].stopped = False
                self.stop_stats["SIGCONT"] += 1
        deadline = now() + 40 * slow
        while now() < deadline and any(p.alive() for p in self.pubs):
            self.sample()
            time.sleep(0.1)
        # markers: the last event on every healthy topic
        self.markers = []
        try:
            with harness.Publisher(self.tg.pub_port, host=self.tg.host,
                                   timeout=self.reply_timeout) as p:
                for t in MARKER_TOPICS:
                    ts = now()
                    i = p.pub(t, MARK + t)
                    self.markers.append([i, t, None, ev_crc(None, MARK + t), ts])
                p.send_raw(b"QUIT\n")
                p.expect_line("OK bye")
        except (AssertionError, OSError) as e:
            self.check(False, "end markers published", str(e))
        for h in self.healthy:
            open(h.cfg["out"] + ".markers", "w").close()
        others = [c for c in self.children if c not in self.pubs]
        deadline = now() + 60 * slow
        while now() < deadline and any(c.alive() for c in others):
            self.sample()
            time.sleep(0.1)
        if self.bench is not None:
            try:
                self.bench.wait(max(1, min(60 * slow, self.t_hard - now() - 60)))
            except subprocess.TimeoutExpired:
                pass
        for c in self.children:
            if c.alive():
                self.notes.append("%s still running at the end: killed" % c.name)
                c.kill()
        if self.bench is not None and self.bench.poll() is None:
            self.notes.append("spout-bench still running at the end: killed")
            self.bench.kill()
            self.bench.wait(5)

    # -- end checks
    def settle(self):
        """Wait (bounded) until everything the load opened has closed."""
        tg = self.tg
        base_open = self.m0.get("spout_connections_open", 0)
        deadline = now() + SETTLE_S * self.slow
        state = None
        while True:
            try:
                m = tg.metrics()
                n = stable_fds(tg, tries=6)
                state = (n, m.get("spout_connections_open"), m.get("spout_publishers_open"),
                         m.get("spout_topics"), m)
                if n == self.base_fds and state[1] <= base_open and state[2] == 0 and \
                        state[3] == 0:
                    return state
            except (AssertionError, OSError) as e:
                state = (None, None, None, None, {})
                self.notes.append("settle scrape: %s" % e)
            if now() > deadline:
                return state
            time.sleep(0.25)

    def finish(self):
        tg = self.tg
        a = self.args
        alive = tg.alive()
        self.check(alive, "spoutd alive after the load")
        final = {}
        if alive:
            fds, opn, pubs, topics, m1 = self.settle()
            final.update(fds=fds, open=opn, pubs=pubs, topics=topics)
            self.m1 = m1
            self.check(fds == self.base_fds, "open fds back to the baseline exactly",
                       "baseline %s, final %s" % (self.base_fds, fds))
            self.check(opn is not None and opn <= self.m0.get("spout_connections_open", 0),
                       "spout_connections_open back to the baseline",
                       "baseline %s, final %s" % (self.m0.get("spout_connections_open"), opn))
            self.check(pubs == 0, "no publisher connection left", "spout_publishers_open %s" % pubs)
            self.check(topics == 0, "no topic with subscribers left", "spout_topics %s" % topics)
            self.check_memory(final)
            r = harness.raw_http(tg.http_port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 10,
                                 host=tg.host)
            self.check(r.status == 200, "GET /readyz answers 200 after the soak", r.describe())
        else:
            self.m1 = {}
        rep = tg.sanitizer_report()
        self.check(rep is None, "no sanitizer report in the spoutd log (during the run)", rep or "")
        results = self.verify() if hasattr(self, "pubs") else {}
        # stop a broker we started: exit 0, and nothing from LeakSanitizer
        stop = None
        if tg.broker is not None and alive:
            try:
                rc, dt = tg.broker.stop(signal.SIGTERM, timeout=30 * self.slow)
                stop = (rc, dt)
                self.check(rc == 0, "spoutd exits 0 on SIGTERM", "exit %s" % rc)
            except AssertionError as e:
                self.check(False, "spoutd exits on SIGTERM", str(e))
            rep = tg.sanitizer_report()
            self.check(rep is None, "no sanitizer report in the spoutd log (at exit)", rep or "")
        elif tg.broker is not None:
            tg.broker.kill()
        ok = all(c[0] for c in self.checks)
        self.print_summary(results, final, stop, ok)
        if ok and not a.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            print("child results and logs kept in %s" % self.workdir)
        return 0 if ok else 1

    def check_memory(self, final):
        tg = self.tg
        m0, m1 = self.m0, self.m1
        san = tg.sanitizer_build()
        hist_budget_kb = int(m1.get("spout_history_budget_bytes", 64 << 20)) // 1024
        quarantine = ASAN_QUARANTINE_MB
        for kv in os.environ.get("ASAN_OPTIONS", "").split(":"):
            if kv.startswith("quarantine_size_mb="):
                try:
                    quarantine = max(0, int(kv.split("=", 1)[1]))
                except ValueError:
                    pass
        slack_kb = RSS_SLACK_MB * 1024 + (quarantine * 1024 if san == "asan" else 0)
        if san == "tsan":
            slack_kb *= TSAN_SLACK_FACTOR
        limit = (self.base_rss or 0) + hist_budget_kb + slack_kb
        # RSS does not fall at once after a burst of frees; poll (bounded) for
        # it to come within the bound rather than judging the first sample
        deadline = now() + 10 * self.slow
        rss = tg.rss_kb()
        while rss is not None and rss > limit and now() < deadline:
            time.sleep(0.5)
            rss = tg.rss_kb()
        final["rss"] = rss
        final["rss_limit"] = limit
        self.check(rss is not None and rss <= limit, "RSS back within tolerance of the baseline",
                   "baseline %s, final %s, limit %s (= baseline + history budget %s + slack %s)"
                   % (mib(self.base_rss), mib(rss), mib(limit), mib(hist_budget_kb),
                      mib(slack_kb)))
        if "spout_jemalloc_allocated_bytes" in m0 and "spout_jemalloc_allocated_bytes" in m1:
            a0 = m0["spout_jemalloc_allocated_bytes"]
            a1 = m1["spout_jemalloc_allocated_bytes"]
            h1 = m1.get("spout_history_bytes", 0)
            lim = a0 + h1 + ALLOC_SLACK_MB * (1 << 20)
            final["alloc"] = (a0, a1, h1)
            self.check(a1 <= lim, "live allocations back to the baseline plus history",
                       "jemalloc allocated: baseline %.2f MiB, final %.2f MiB, history holds "
                       "%.2f MiB, limit %.2f MiB" % (a0 / 1048576, a1 / 1048576, h1 / 1048576,
                                                    lim / 1048576))
        elif not san:
            self.notes.append("no jemalloc metrics: allocated-bytes check skipped")

    # -- verification of what the clients saw
    def verify(self):
        R = {"published": 0, "by_mode": {}, "pub_stats": {}, "healthy": {}, "clients": {}}
        events = {}
        pub_errors = []
        for p in self.pubs:
            r = p.result()
            if r is None:
                pub_errors.append("%s: no result (status %s) %s" % (
                    p.name, p.proc.returncode, " | ".join(p.stderr_tail(3))))
                continue
            pub_errors += ["%s: %s" % (p.name, e) for e in r["errors"]]
            R["by_mode"][r["mode"]] = len(r["events"])
            R["pub_stats"][r["name"]] = r["stats"]
            for e in r["events"]:
                if e[0] in events:
                    pub_errors.append("id %d returned twice" % e[0])
                events[e[0]] = e
        for e in getattr(self, "markers", []):
            events[e[0]] = e
        R["published"] = len(events)
        R["markers"] = len(getattr(self, "markers", []))
        self.check(not pub_errors, "publishers ran without errors", "; ".join(pub_errors[:5]))
        bad = {}
        bad_mismatch = []
        for s in R["pub_stats"].values():
            for k, v in s["bad"].items():
                bad["pipelined " + k] = bad.get("pipelined " + k, 0) + v
            bad_mismatch += s["bad_mismatch"]
        by_topic = {}
        for e in sorted(events.values()):
            by_topic.setdefault(e[1], []).append(e)
        exp_cache = {}

        def expected(topics):
            key = tuple(topics)
            if key not in exp_cache:
                lst = []
                for t, evs in by_topic.items():
                    if matches_any(topics, t):
                        lst += evs
                lst.sort()
                exp_cache[key] = (lst, {e[0]: k for k, e in enumerate(lst)})
            return exp_cache[key]

        # ---- healthy subscribers: exactly once, in order, nothing missing
        hsum = {"conns": 0, "deliveries": 0, "missing": 0, "dup": 0, "order": 0, "unexpected": 0,
                "data": 0, "resumes": 0, "gaps": 0, "server_ends": 0}
        hfail = []
        for h in self.healthy:
            r = h.result()
            if r is None:
                hfail.append("%s: no result (status %s) %s" % (
                    h.name, h.proc.returncode, " | ".join(h.stderr_tail(3))))
                continue
            for c in r["conns"]:
                hsum["conns"] += 1
                what = "%s%s [%s]" % (c["path"], " (HTTP/1.0)" if c["http10"] else "", c["mode"])
                lst, pos = expected(c["topics"])
                got = c["ids"]
                hsum["deliveries"] += len(got)
                hsum["resumes"] += c["resumes"]
                hsum["gaps"] += len(c["gaps"])
                hsum["server_ends"] += len(c["server_ends"])
                probs = []
                if c["errors"]:
                    probs.append("errors %s" % c["errors"][:3])
                if not c["heads"]:
                    probs.append("never got a response head")
                    hfail.append("%s: %s" % (what, "; ".join(probs)))
                    continue
                t_head = c["heads"][0]
                must = next((k for k, e in enumerate(lst) if e[4] > t_head), len(lst))
                unexpected = [i for i in got if i not in pos]
                dup = len(got) - len(set(got))
                order = sum(1 for k in range(1, len(got)) if got[k] <= got[k - 1])
                known = [i for i in got if i in pos]
                start = min([pos[i] for i in known] + [must])
                want = [e[0] for e in lst[start:]]
                missing = sorted(set(want) - set(got))
                data = sum(1 for i, cr in zip(got, c["crcs"]) if i in events and
                           events[i][3] != cr)
                hsum["missing"] += len(missing)
                hsum["dup"] += dup
                hsum["order"] += order
                hsum["unexpected"] += len(unexpected)
                hsum["data"] += data
                if missing:
                    probs.append("%d missing (first %s)" % (len(missing), missing[:3]))
                if dup:
                    probs.append("%d duplicates" % dup)
                if order:
                    probs.append("%d out of order" % order)
                if unexpected:
                    probs.append("%d unexpected ids (first %s)" % (len(unexpected),
                                                                    unexpected[:3]))
                if data:
                    probs.append("%d with wrong type/data" % data)
                if c["gaps"]:
                    probs.append("spout-gap on resume: %s" % c["gaps"][:2])
                if c["server_ends"]:
                    probs.append("stream ended by the server: %s" % c["server_ends"][:3])
                if c["noid"]:
                    probs.append("%d events without id" % c["noid"])
                if c["markers_missing"]:
                    probs.append("end markers not received: %s" % c["markers_missing"])
                if c["mode"] in ("long", "resume") and start != 0:
                    probs.append("long-lived subscriber missed the start (from index %d)" % start)
                if not got:
                    probs.append("received nothing")
                if probs:
                    hfail.append("%s: %s" % (what, "; ".join(probs)))
        R["healthy"] = hsum
        self.check(not hfail, "healthy subscribers received every event exactly once, in order",
                   "; ".join(hfail[:6]))

        # ---- churn / slow / stopped: contiguous runs, exact resumes
        def per_topic_runs(rec, pos):
            p = []
            ids = rec["ids"]
            if any(ids[k] >= ids[k + 1] for k in range(len(ids) - 1)):
                p.append("ids not increasing")
            if any(i not in pos for i in ids):
                p.append("ids not published on its topics")
                return p
            per = {}
            for i, cr in zip(ids, rec["crcs"]):
                per.setdefault(events[i][1], []).append((i, cr))
            for t, lst in per.items():
                tl = by_topic[t]
                tpos = {e[0]: k for k, e in enumerate(tl)}
                k0 = tpos[lst[0][0]]
                want = tl[k0:k0 + len(lst)]
                if [e[0] for e in want] != [x[0] for x in lst]:
                    p.append("hole in topic %s after a spout-gap" % t)
                elif any(e[3] != x[1] for e, x in zip(want, lst)):
                    p.append("wrong type/data")
            return p

        def slices(name, records, resume_exact=True):
            n = bad_n = evs = ends = 0
            probs = []
            for rec in records:
                n += 1
                evs += rec["n"]
                if rec["end"] is not None:
                    ends += 1
                if rec["n"] == 0:
                    continue
                lst, pos = expected(CLIENT_PATHS[rec["p"]][1])
                p = []
                if rec["first"] not in pos or rec["last"] not in pos:
                    p.append("ids not published on its topics (%s..%s)" % (rec["first"],
                                                                           rec["last"]))
                elif rec.get("ids") is not None:
                    p += per_topic_runs(rec, pos)
                else:
                    i, j = pos[rec["first"]], pos[rec["last"]]
                    if not rec["incr"]:
                        p.append("ids not increasing")
                    elif j - i + 1 != rec["n"]:
                        p.append("%d events where %d were published (hole)" % (rec["n"],
                                                                                j - i + 1))
                    elif sum(e[3] for e in lst[i:j + 1]) & 0xFFFFFFFF != rec["crcsum"]:
                        p.append("wrong type/data")
                    lei = rec.get("lei")
                    if resume_exact and lei is not None and not rec["gaps"] and lei in pos:
                        if i != pos[lei] + 1:
                            p.append("resume after %d started at index %+d" % (
                                lei, i - pos[lei] - 1))
                if rec["noid"]:
                    p.append("%d events without id" % rec["noid"])
                if p:
                    bad_n += 1
                    probs.append("%s %s: %s" % (name, CLIENT_PATHS[rec["p"]][0], "; ".join(p)))
            return n, bad_n, evs, ends, probs

        # churn
        cr = self.churn.result()
        if cr is None:
            self.check(False, "churn client produced its result",
                       " | ".join(self.churn.stderr_tail(3)))
            cr = {"stats": {}, "cycles": 0, "records": [], "errors": []}
        n, bad_n, evs, ends, probs = slices("churn", cr["records"])
        resumes = sum(1 for r in cr["records"] if r.get("lei") is not None)
        rgaps = sum(1 for r in cr["records"] if r.get("lei") is not None and r["gaps"])
        R["clients"]["churn"] = {"cycles": cr["cycles"], "kinds": cr["stats"], "streams": n,
                                 "events": evs, "bad": bad_n, "resumes": resumes,
                                 "resume_gaps": rgaps, "server_ends": ends}
        self.check(not cr["errors"], "churn clients: every stream got its 200 head",
                   "; ".join(cr["errors"][:5]))
        self.check(not probs, "churn streams saw contiguous runs of events, resumes exact",
                   "; ".join(probs[:5]))
        # slow + stopped
        sheds_seen = 0
        stopped_children = [c for c in self.children if c.name.startswith("stopped")]
        for name, chs in (("slow", [self.slowp]), ("stopped", stopped_children)):
            recs, errs, opened, closed, missing_res = [], [], 0, 0, 0
            for c in chs:
                r = c.result()
                if r is not None and r.get("partial") and not c.killed:
                    errs.append("%s: only a partial result (status %s)" % (c.name,
                                                                           c.proc.returncode))
                if r is None:
                    if not c.killed:
                        missing_res += 1
                        errs.append("%s: no result (status %s)" % (c.name, c.proc.returncode))
                    continue
                recs += r["records"]
                errs += r["errors"]
                opened += r["opened"]
                closed += r["server_closed"]
            n, bad_n, evs, ends, probs = slices(name, recs)
            R["clients"][name] = {"processes": len(chs), "killed": sum(1 for c in chs if c.killed),
                                  "connections": opened, "closed_by_spoutd": closed,
                                  "events": evs, "bad": bad_n}
            sheds_seen += closed
            self.check(not errs, "%s clients ran without errors" % name, "; ".join(errs[:5]))
            self.check(not probs, "%s clients saw contiguous runs of events" % name,
                       "; ".join(probs[:5]))
        # ---- bad requests
        br = self.bad.result()
        if br is None:
            self.check(False, "bad-request client produced its result",
                       " | ".join(self.bad.stderr_tail(3)))
            br = {"answers": {}, "mismatches": [], "errors": [], "sent": 0}
        for k, v in br["answers"].items():
            bad[k] = bad.get(k, 0) + v
        R["bad"] = bad
        mism = br["mismatches"] + [["pipelined", w, g] for w, g in bad_mismatch]
        R["bad_mismatches"] = mism
        self.check(not mism, "every bad request got the answer it should",
                   "; ".join("%s: want %r got %r" % tuple(x) for x in mism[:5]))
        self.check(not br["errors"], "bad-request client ran without errors",
                   "; ".join(br["errors"][:5]))
        # ---- spout-bench
        if self.bench is not None:
            rc = self.bench.returncode
            try:
                with open(os.path.join(self.workdir, "bench.json")) as f:
                    bj = json.load(f)
            except (OSError, ValueError):
                bj = None
            R["bench"] = bj
            R["bench_rc"] = rc
            detail = ""
            if bj:
                detail = "lost %s dup %s order %s failed %s dropped %s" % (
                    bj.get("lost"), bj.get("duplicated"), bj.get("out_of_order"),
                    bj.get("failed"), bj.get("dropped"))
            else:
                try:
                    with open(os.path.join(self.workdir, "bench.stderr"), "rb") as f:
                        detail = f.read().decode("utf-8", "replace")[-300:]
                except OSError:
                    pass
            self.check(rc == 0, "spout-bench checked subscribers lost nothing (exit 0)",
                       "exit %s %s" % (rc, detail))
            if bj:
                sheds_seen += bj.get("slow_closed", 0)
        # ---- the load exercised shedding (spoutd's own count)
        if self.m1:
            sh = diff_labelled(self.m1, self.m0, "spout_connections_shed_total")
            self.check(sum(sh.values()) >= 1,
                       "slow/stopped clients were shed (spout_connections_shed_total moved)",
                       "sheds %s, clients saw %d server closes" % (sh, sheds_seen))
        return R

    # -- report
    def print_summary(self, R, final, stop, ok):
        a = self.args
        m0, m1 = self.m0, getattr(self, "m1", {}) or {}
        P = print
        P("")
        P("=" * 72)
        P("spout soak: %s" % ("PASS" if ok else "FAIL"))
        P("=" * 72)
        tg = self.tg
        P("broker       %s (pid %s%s), log %s" % (
            harness.spoutd_path() if tg.broker else "external %s:%d" % (tg.host, tg.http_port),
            tg.pid, ", " + tg.sanitizer_build() if tg.sanitizer_build() else "",
            os.path.relpath(tg.log_path, ROOT) if tg.log_path else "-"))
        P("duration     %d s of load (--duration), %.0f s in all; seed %d"
          % (a.duration, now() - self.t_start, self.seed))
        if not R:
            self.print_checks(ok)
            return
        ps = R.get("pub_stats", {})
        conns = sum(s["connections"] for s in ps.values())
        P("published    %d events acknowledged (%s; end markers %d)" % (
            R["published"], ", ".join("%s %d" % kv for kv in sorted(R["by_mode"].items())),
            R.get("markers", 0)))
        P("publishers   %d connections: QUIT %d, close %d, cut mid-command %d, command after "
          "QUIT %d" % (conns, sum(s["quit"] for s in ps.values()),
                       sum(s["close"] for s in ps.values()), sum(s["half"] for s in ps.values()),
                       sum(s["after_quit"] for s in ps.values())))
        h = R["healthy"]
        P("healthy      %d subscriptions, %d deliveries checked: missing %d, duplicated %d, "
          "out of order %d, unexpected %d, wrong data %d; %d Last-Event-ID resumes (spout-gap %d)"
          % (h["conns"], h["deliveries"], h["missing"], h["dup"], h["order"], h["unexpected"],
             h["data"], h["resumes"], h["gaps"]))
        c = R["clients"].get("churn", {})
        P("churn        %d cycles %s; %d streams saw %d events (bad runs %d), %d resumes "
          "(spout-gap %d)" % (c.get("cycles", 0), json.dumps(c.get("kinds", {}), sort_keys=True),
                              c.get("streams", 0), c.get("events", 0), c.get("bad", 0),
                              c.get("resumes", 0), c.get("resume_gaps", 0)))
        for k in ("slow", "stopped"):
            s = R["clients"].get(k, {})
            P("%-12s %d processes (%d SIGKILLed), %d connections, %d closed by spoutd, %d events"
              " (bad runs %d)" % (k, s.get("processes", 0), s.get("killed", 0),
                                  s.get("connections", 0), s.get("closed_by_spoutd", 0),
                                  s.get("events", 0), s.get("bad", 0)))
        P("signals      %s" % ", ".join("%s %d" % kv for kv in self.stop_stats.items()))
        if "bench" in R:
            bj = R["bench"] or {}
            P("spout-bench  exit %s: %s subscribers, %s published, %s received, lost %s, dup %s,"
              " out of order %s, slow closed %s/%s" % (
                  R["bench_rc"], bj.get("connected"), bj.get("published"), bj.get("received"),
                  bj.get("lost"), bj.get("duplicated"), bj.get("out_of_order"),
                  bj.get("slow_closed"), bj.get("slow_connected")))
        P("bad requests %d answers: %s" % (sum(R["bad"].values()), ", ".join(
            "%s x%d" % kv for kv in sorted(R["bad"].items()))))
        P("             mismatches %d" % len(R["bad_mismatches"]))
        if m1:
            d = lambda k: int(m1.get(k, 0) - m0.get(k, 0))  # noqa: E731
            P("/metrics     connections accepted %d, streams opened %d, requests %d, bad requests "
              "%d, header timeouts %d, publishers accepted %d, publish errors %d"
              % (d("spout_connections_accepted_total"), d("spout_streams_opened_total"),
                 d("spout_requests_total"), d("spout_bad_requests_total"),
                 d("spout_header_timeouts_total"), d("spout_publishers_accepted_total"),
                 d("spout_publish_errors_total")))
            P("             events published %d, frames delivered %d, replays %d (%d events, "
              "gaps %d), heartbeats %d" % (
                  d("spout_events_published_total"), d("spout_frames_delivered_total"),
                  d("spout_replays_total"), d("spout_replayed_events_total"),
                  d("spout_replay_gaps_total"), d("spout_heartbeats_total")))
            P("             shed by reason %s" % diff_labelled(m1, m0,
                                                               "spout_connections_shed_total"))
            P("             closed by reason %s" % diff_labelled(
                m1, m0, "spout_connections_closed_total"))
            P("             drops by reason %s" % diff_labelled(m1, m0, "spout_event_drops_total"))
            P("             rejected %s, accept errors %d, history %d events / %.2f MiB "
              "(budget %.0f MiB), out-queue depth max %d" % (
                  diff_labelled(m1, m0, "spout_connections_rejected_total"),
                  d("spout_accept_errors_total"), m1.get("spout_history_events", 0),
                  m1.get("spout_history_bytes", 0) / 1048576,
                  m1.get("spout_history_budget_bytes", 0) / 1048576,
                  m1.get("spout_out_queue_depth_max", 0)))
        P("memory       RSS baseline %s, peak %s, final %s (limit %s)" % (
            mib(self.base_rss), mib(self.peak_rss), mib(final.get("rss")),
            mib(final.get("rss_limit"))))
        if "alloc" in final:
            a0, a1, h1 = final["alloc"]
            P("             jemalloc allocated baseline %.2f MiB, final %.2f MiB (history %.2f MiB)"
              % (a0 / 1048576, a1 / 1048576, h1 / 1048576))
        P("fds          baseline %s, peak %s, final %s; connections open peak %d"
          % (self.base_fds, self.peak_fds, final.get("fds"), self.peak_open))
        if stop:
            P("stop         SIGTERM: exit %s after %.1f s" % stop)
        self.print_checks(ok)

    def print_checks(self, ok):
        for n in self.notes:
            print("note         %s" % n)
        print("checks:")
        for good, what, detail in self.checks:
            print("  %s %s%s" % ("ok  " if good else "FAIL", what,
                                 "" if good or not detail else ": " + detail))
        print("soak %s" % ("PASSED" if ok else "FAILED"), flush=True)


def main():
    ap = argparse.ArgumentParser(description="spoutd soak test (see the module docstring)")
    ap.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    ap.add_argument("--spoutd", help="spoutd binary to start (default $SPOUTD or build/spoutd)")
    ap.add_argument("--spoutd-arg", action="append", default=[],
                    help="extra flag for the spoutd soak.py starts, repeatable; write "
                         "--spoutd-arg=--io --spoutd-arg=uring")
    ap.add_argument("--http", help="soak a running broker: its HTTP HOST:PORT")
    ap.add_argument("--pub", help="... and its publisher HOST:PORT")
    ap.add_argument("--pid", type=int, help="... and its pid (RSS/fds from /proc, else /metrics)")
    ap.add_argument("--log", help="... and its log file (scanned for sanitizer reports)")
    ap.add_argument("--bench", default=os.environ.get("SPOUT_BENCH",
                                                      os.path.join(ROOT, "build", "spout-bench")),
                    help="spout-bench binary (default $SPOUT_BENCH or build/spout-bench)")
    ap.add_argument("--no-bench", action="store_true", help="leave spout-bench out")
    ap.add_argument("--rate", type=float, default=1.0, help="scale every load rate (default 1)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--workdir", default=None, help="where child results go (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep child results even on success")
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role:
        with open(a.config) as f:
            cfg = json.load(f)
        ROLES[a.role](cfg)
        return 0
    if bool(a.http) != bool(a.pub):
        ap.error("--http and --pub go together")
    if a.pid:
        try:
            with open("/proc/%d/comm" % a.pid) as f:
                comm = f.read().strip()
        except OSError:
            ap.error("--pid %d: no such process" % a.pid)
        if not comm.startswith("spoutd"):
            ap.error("--pid %d is %r, not spoutd" % (a.pid, comm))
    if a.duration < 5:
        ap.error("--duration must be at least 5 s")
    if a.spoutd:
        os.environ["SPOUTD"] = a.spoutd
    if a.no_bench:
        a.bench = None
    raise_nofile()
    # the hard deadline for the whole run: duration + a fixed margin
    def hard_stop(signum, frame):
        raise TimeoutError("hard deadline (duration + %d s) reached" % HARD_MARGIN)

    def terminated(signum, frame):
        raise TimeoutError("stopped by %s" % signal.Signals(signum).name)
    signal.signal(signal.SIGALRM, hard_stop)
    signal.signal(signal.SIGTERM, terminated)
    signal.alarm(int(a.duration + HARD_MARGIN))
    s = Soak(a)
    try:
        rc = s.run()
    except (TimeoutError, KeyboardInterrupt, Exception) as e:   # noqa: B902
        import traceback
        traceback.print_exc()
        print("soak: aborted: %s: %s" % (type(e).__name__, e))
        rc = 1
    finally:
        signal.alarm(0)
        for c in s.children:
            if c.alive():
                c.kill()
        b = getattr(s, "bench", None)
        if b is not None and b.poll() is None:
            b.kill()
            b.wait(5)
        if s.tg is not None and s.tg.broker is not None and s.tg.broker.alive():
            s.tg.broker.kill()
    return rc


if __name__ == "__main__":
    sys.exit(main())
