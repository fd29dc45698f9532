"""Role "publisher": one publisher connection at a time, at a steady rate,
in one of four modes: "single" (PUB, one at a time), "event" (EVENT with a
type and a multi-line payload), "pipeline" (batches of PUB/EVENT with bad
commands mixed in, each of which must get its ERR reply) and "heavy" (1 KB
events on soak.heavy, to fill slow clients). It hangs up every 20-200
commands in one of several ways (QUIT, close, close in the middle of a
command, a command pipelined after QUIT) and reconnects.

Result: every acknowledged event as [id, topic, type, crc, t_send] (the
final checks compare subscribers against it), connection and hang-up
counts, the bad replies seen and any mismatches, and errors.
"""
import random
import time

import harness

from .badreq import BAD_COMMANDS, BIG_BAD_COMMANDS
from .client import quit_publisher
from .common import child_setup, ev_crc, now, pace, visible, write_json
from .topology import DEEP, HEALTHY_TOPICS, HEAVY, NOISE

PAYLOAD_LINES = ["line two", "  indented three", "", "data: not a field", "id: 7 neither",
                 "ümlaut → ünicode", ": not a comment", "last\r\nline (crlf inside)"]
EVENT_TYPES = ["update", "alert", "-", "x.y:z", "t_" + "q" * 60]


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
                quit_publisher(p, timeout)
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
            pace(next_t, t_until)
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
            quit_publisher(p, timeout)
            stats["quit"] += 1
        except (AssertionError, OSError) as e:
            errors.append("final QUIT: %s" % e)
        p.close()
    write_json(cfg["out"], {"name": name, "mode": mode, "events": events, "stats": stats,
                            "errors": errors})
