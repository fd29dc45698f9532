#!/usr/bin/env python3
"""
chaos_client.py - the SSE subscriber that test_chaos.py runs inside a network
namespace (`ip netns exec NS python3 chaos_client.py ...`), behind an
impaired link. It uses harness.SSEClient (the suite's own chunked + SSE
parser) and writes what it receives to a file, one line each, flushed as it
goes, so the test (in the root namespace) can read it at any time:

  HEAD <status>
  EV <CLOCK_MONOTONIC ns> <id or -> <crc32 of data> <len of data> <event type>
  END <eof|clean|reset|timeout|error:...>

It stops by itself when the stream ends or after --max-seconds; the test
kills it by PID in any case.

  chaos_client.py HOST PORT PATH OUTFILE [--max-seconds S] [--keepalive]
                  [--last-event-id ID]

--keepalive: TCP keepalive probes after 1 s idle, every 1 s, so that once a
broken link heals the client learns within seconds that the broker closed
the connection (its FIN or RST may have been lost while the link was down).
--last-event-id: resume, as an EventSource does when it reconnects.
"""
import argparse
import os
import select
import socket
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import SSEClient  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("path")
    ap.add_argument("out")
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--keepalive", action="store_true")
    ap.add_argument("--last-event-id")
    args = ap.parse_args()

    deadline = time.monotonic() + args.max_seconds
    with open(args.out, "w", buffering=1) as out:
        try:
            extra = "Last-Event-ID: %s\r\n" % args.last_event_id if args.last_event_id else ""
            c = SSEClient(args.port, args.path, host=args.host, connect_timeout=10.0,
                          extra_headers=extra)
        except OSError as e:
            out.write("END error:connect:%s\n" % e.__class__.__name__)
            return 1
        if args.keepalive:
            s = c.sock
            s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 60)
        head_written = False
        end = "timeout"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([c.sock], [], [], min(left, 0.2))
            if r:
                try:
                    c.pump()
                except (OSError, AssertionError) as e:   # AssertionError: bad framing
                    end = "error:%s" % e.__class__.__name__
                    break
            if c.head is not None and not head_written:
                out.write("HEAD %d\n" % c.head.status)
                head_written = True
            evs = c.take_events()
            if evs:
                now = time.monotonic_ns()
                out.write("".join("EV %d %s %d %d %s\n" % (
                    now, e.id if e.id and " " not in e.id else "-",
                    zlib.crc32(e.data.encode("utf-8")), len(e.data), e.type) for e in evs))
            if c.end is not None:
                end = c.end
                break
        out.write("END %s\n" % end)
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
