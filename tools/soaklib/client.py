"""Client-side building blocks the subscriber roles share: opening an SSE
stream (optionally resuming with Last-Event-ID) or a bare TCP connection from
a chosen source address, and Received, the compact record of what one stream
saw, from which the final checks work."""
import array
import socket

import harness

from .common import ev_crc
from .topology import MARK


def open_sse(cfg, path, src, http10=False, rcvbuf=None, lei=None, via="header"):
    """An SSE stream on <path> from <src>; <lei>: resume after this id, sent
    as a Last-Event-ID header (<via> "header") or ?lastEventId= ("query")."""
    extra = ""
    if lei is not None:
        if via == "header":
            extra = "Last-Event-ID: %d\r\n" % lei
        else:
            path = path + ("&" if "?" in path else "?") + "lastEventId=%d" % lei
    return harness.SSEClient(cfg["http_port"], path, http10=http10, host=cfg["host"], src=src,
                             rcvbuf=rcvbuf, extra_headers=extra, connect_timeout=10)


def open_raw(cfg, src):
    """A plain TCP connection to the HTTP port from <src> (10 s timeout), for
    requests that are cut off or never sent."""
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(10)
    s.connect((cfg["host"], cfg["http_port"]))
    return s


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


def client_record(path_idx, rx, head_t, end, extra=None):
    """The result record of one churn/slow/stopped stream: its slice of
    events, its CLIENT_PATHS index, when its head came and how it ended."""
    r = rx.slice_record()
    r.update({"p": path_idx, "t_head": head_t, "end": end})
    if extra:
        r.update(extra)
    return r


def quit_publisher(p, timeout=None):
    """End a publisher connection politely: QUIT, and the reply must be
    "OK bye" (AssertionError otherwise)."""
    p.send_raw(b"QUIT\n")
    p.expect_line("OK bye", timeout)
