#!/usr/bin/env python3
"""grip_origin.py - the GRIP origin (app backend) behind Pushpin in the bench.

Pushpin is a proxy: every subscriber request goes to an origin, and the
origin's GRIP instructions turn the response into a held stream. This is
that origin, and nothing more:

    GET /stream/<topic>  ->  200 OK
                             Content-Type: text/event-stream
                             Grip-Hold: stream
                             Grip-Channel: <topic>
                             body ":ok\\n\\n"

Pushpin sends the headers (less the Grip-* ones) and the body to the client
and then keeps the connection open, subscribed to <topic>. The body is the
start of the client's stream, so it must be valid SSE: an SSE comment,
the same ":ok" line spoutd opens its streams with (it also makes buffering
proxies pass the head on at once). The response itself is complete
(Content-Length), so the origin connection goes back to the pool at once.

Anything else gets 404. GET /health gets 200 "ok" (peers.sh waits on it).

Built to never be the bottleneck of the connect rate: one asyncio Protocol,
no HTTP library, no header parsing beyond the request line (the requests
come from Pushpin and carry no body), keep-alive, responses prebuilt per
topic. Python 3 standard library only.

    grip_origin.py [--host 127.0.0.1] --port N [--pidfile FILE]
"""
import argparse
import asyncio
import os
import re
import signal
import socket
import sys

_HEAD_FMT = (b"HTTP/1.1 200 OK\r\n"
             b"Content-Type: text/event-stream\r\n"
             b"Cache-Control: no-cache\r\n"
             b"Grip-Hold: stream\r\n"
             b"Grip-Channel: %s\r\n"
             b"Content-Length: 5\r\n"
             b"\r\n"
             b":ok\n\n")
_NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
              b"Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n")
_HEALTH = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
           b"Content-Length: 3\r\n\r\nok\n")
_BAD = (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n")

_cache = {}  # path -> response bytes (topics repeat: 10 topics, 10,000 subs)
_CACHE_MAX = 100000


# Same alphabet as spout's topics (docs/protocol.md, 3.1); it also keeps
# CR/LF and "," (a channel-list separator) out of the Grip-Channel header.
_topic_ok = re.compile(rb"[A-Za-z0-9_\-:@~+=.]{1,256}\Z").match


def _response(path):
    r = _cache.get(path)
    if r is not None:
        return r, False
    if path.startswith(b"/stream/"):
        topic = path[8:].split(b"?", 1)[0]
        if _topic_ok(topic):
            r = _HEAD_FMT % topic
            if len(_cache) < _CACHE_MAX:
                _cache[path] = r
            return r, False
        return _NOT_FOUND, True
    if path == b"/health":
        return _HEALTH, False
    return _NOT_FOUND, True


class Origin(asyncio.Protocol):
    __slots__ = ("tr", "buf")

    def connection_made(self, transport):
        self.tr = transport
        self.buf = b""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        out = []
        close = False
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            line_end = buf.find(b"\r\n")
            parts = buf[:line_end].split(b" ")
            buf = buf[end + 4:]
            if len(parts) != 3:
                out.append(_BAD)
                close = True
                break
            r, close = _response(parts[1])
            out.append(r)
            if close:
                break
        if len(buf) > 65536:  # no request head is that long
            out.append(_BAD)
            close = True
        self.buf = b"" if close else buf
        if out:
            self.tr.write(b"".join(out))
        if close:
            self.tr.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pidfile")
    a = ap.parse_args()
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, lambda: stop.done() or stop.set_result(0))
    server = await loop.create_server(Origin, a.host, a.port, backlog=4096,
                                      reuse_address=True)
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    print("grip_origin: listening on %s:%d" % (a.host, a.port),
          file=sys.stderr, flush=True)
    async with server:
        await stop


if __name__ == "__main__":
    asyncio.run(main())
