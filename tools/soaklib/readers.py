"""Roles "slow" and "stopped" (role_readers, cfg kind): readers that fall
behind until spoutd sheds them, then reconnect after a pause.

  slow     each slot reads at most <chunk> bytes every <period> s from a
           socket with a small SO_RCVBUF (SLOW_SLOTS): trickle readers are
           shed by --write-timeout-ms, lagging readers by the --queue bound
  stopped  normal readers in a process that the orchestrator SIGSTOPs, then
           SIGCONTs or SIGKILLs; the partial result is flushed every second
           so what a killed process saw is still checked

Like churn streams, every stream must see a contiguous run of its topics'
events. Result: one client_record per stream that got its head, errors,
connections opened and how many spoutd closed.
"""
import random
import selectors
import time

from .client import Received, client_record, open_sse
from .common import child_setup, now, write_json
from .topology import CLIENT_PATHS


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
            records.append(client_record(sl["p"], sl["rx"], sl["head_t"], end))

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
