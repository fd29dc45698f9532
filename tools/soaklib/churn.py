"""Role "churn": subscribe/unsubscribe cycles at a steady rate, up to
<concurrency> streams at once, from 127.0.0.10-29. Each cycle picks a kind:
abort before the response head (FIN, RST, half a request, nothing sent), a
stream closed after 0.1-2 s (FIN or RST, some over HTTP/1.0), or a resume
with Last-Event-ID (header or ?lastEventId=) after the last id a stream on
the same path saw. Every stream must see a contiguous run of its topics'
events, and a resume must start right after its Last-Event-ID.

Result: cycles by kind, one client_record per stream that got its head
(with its Last-Event-ID and kind), and errors.
"""
import random
import selectors
import socket

from .client import Received, client_record, open_raw, open_sse
from .common import child_setup, now, write_json
from .topology import CHURN_PATHS, CLIENT_PATHS


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
                    s = open_raw(cfg, src)
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
                    records.append(client_record(st["p"], rx, st["head_t"], c.end,
                                                  {"lei": st["lei"], "kind": st["kind"]}))
    for st in open_.values():
        st["c"].close()
    write_json(cfg["out"], {"stats": stats, "cycles": cycles, "records": records,
                            "errors": errors})
