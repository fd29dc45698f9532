#!/usr/bin/env python3
"""Publish events to spout over its TCP line protocol. Standard library only.

    python3 publish.py TOPIC DATA...           # each DATA is one event, pipelined
    tail -F app.log | python3 publish.py logs  # no DATA: one event per stdin line
    python3 publish.py --type alert news $'line one\\nline two'

Environment: SPOUT_PUB (HOST:PORT of the publisher listener, default
127.0.0.1:7400) and SPOUT_PUB_TOKEN (sent as AUTH <token> when set).
Prints the broker's reply per event, "OK <id>" or "ERR <reason>", and exits
1 if any event was refused, 2 if AUTH was.

Delivery is at least once: a command whose reply was lost with its
connection is sent again on the next one, so it may be published twice.
"""
import argparse
import logging
import os
import random
import select
import socket
import sys
import time

ADDR = os.environ.get("SPOUT_PUB", "127.0.0.1:7400")
TOKEN = os.environ.get("SPOUT_PUB_TOKEN") or None

log = logging.getLogger("spout.publish")


class SpoutError(Exception):
    """The broker answered ERR <reason>: the command was not published."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class AuthError(SpoutError):
    """AUTH was refused: retrying with the same token cannot help."""


# Lines the broker sends on its own just before it closes the connection.
# They answer no command: the command they seem to answer was not executed.
CLOSING = ("idle timeout", "too many publisher connections", "auth required: no AUTH in time")


def command(topic, data, event_type=None):
    """Encode one event. Text without line breaks (or CR, NUL) and without a
    type goes as PUB; anything else as EVENT, whose payload is length-framed
    and may hold any bytes."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    for name, value in (("topic", topic), ("event type", event_type or "-")):
        if not value or any(c in value for c in " \r\n\0"):
            raise ValueError("%s %r: must be non-empty, without spaces or line breaks"
                             % (name, value))
    if event_type is None and not any(c in payload for c in (b"\r", b"\n", b"\0")):
        return b"PUB %s %s\n" % (topic.encode(), payload)
    return b"EVENT %s %s %d\n%s\n" % (topic.encode(), (event_type or "-").encode(),
                                      len(payload), payload)


class Publisher:
    """One connection to spout's publisher port, reopened when it breaks.

        with Publisher() as pub:
            event_id = pub.publish("news", "hello")       # SpoutError on ERR
            results = pub.publish_many([("news", "a", None), ("news", "b\\nc", "alert")])
    """

    WINDOW = 1000          # commands in flight at once when pipelining

    def __init__(self, addr=ADDR, token=TOKEN, timeout=10.0, max_backoff=10.0):
        host, _, port = addr.rpartition(":")
        self.host, self.port = host.strip("[]") or "127.0.0.1", int(port)
        self.token = token
        self.timeout = timeout          # for connecting, and for each reply
        self.max_backoff = max_backoff
        self.sock = None
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.sendall(b"QUIT\n")
            except OSError:
                pass
            self._drop()

    def publish(self, topic, data, event_type=None):
        """Publish one event; return its id (int). Raises SpoutError on ERR."""
        result = self.publish_many([(topic, data, event_type)])[0]
        if isinstance(result, SpoutError):
            raise result
        return result

    def publish_many(self, events):
        """Publish (topic, data, event_type) tuples, pipelined. Returns one
        result per event, in order: its id (int), or a SpoutError."""
        cmds = [command(*ev) for ev in events]
        return [self._result(line) for line in self._roundtrip(cmds)]

    def ping(self):
        """A round trip that publishes nothing (the broker closes publishers
        silent for --pub-idle-timeout-ms, 5 minutes by default)."""
        if self._roundtrip([b"PING\n"])[0] != "PONG":
            raise SpoutError("unexpected reply to PING")

    @staticmethod
    def _result(line):
        if line.startswith("OK "):
            return int(line[3:])
        return SpoutError(line[4:] if line.startswith("ERR ") else line)

    # -- the connection

    def _roundtrip(self, cmds):
        """Send commands, return their reply lines in order. Replies come in
        command order, one line each, so pipelining is just counting."""
        replies = []
        failures = 0
        while len(replies) < len(cmds):
            try:
                self._ensure_connected()
                pending = cmds[len(replies):len(replies) + self.WINDOW]
                self.sock.sendall(b"".join(pending))
                for _ in pending:
                    line = self._readline()
                    if line.startswith("ERR ") and line[4:].startswith(CLOSING):
                        raise ConnectionError("broker closed the connection: " + line)
                    replies.append(line)
                failures = 0
            except AuthError:
                self._drop()
                raise
            except OSError as e:     # refused, reset, EOF, timeout
                self._drop()
                failures += 1
                delay = min(self.max_backoff, 0.1 * 2 ** failures) * random.uniform(0.5, 1.0)
                log.warning("%s:%d: %s; %d command(s) unanswered, retrying in %.1fs",
                            self.host, self.port, e, len(cmds) - len(replies), delay)
                time.sleep(delay)
        return replies

    def _ensure_connected(self):
        if self.sock is not None:
            # Between round trips nothing is owed to us: anything readable is
            # the broker closing (idle timeout, shutdown). Start afresh.
            readable, _, _ = select.select([self.sock], [], [], 0)
            if self.buf or readable:
                self._drop()
        if self.sock is not None:
            return
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.token:
            self.sock.sendall(b"AUTH %s\n" % self.token.encode())
            line = self._readline()
            if line.startswith("ERR ") and line[4:].startswith(CLOSING):
                raise ConnectionError("broker closed the connection: " + line)
            if line != "OK":
                raise AuthError(line[4:] if line.startswith("ERR ") else line)
        log.info("connected to %s:%d%s", self.host, self.port,
                 " (authenticated)" if self.token else "")

    def _readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 1:]
                return line.decode("utf-8", "replace")
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            self.buf += chunk

    def _drop(self):
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buf = None, b""


def main():
    ap = argparse.ArgumentParser(description="Publish events to spout.")
    ap.add_argument("--type", help="event type (EventSource listeners use it); default none")
    ap.add_argument("topic")
    ap.add_argument("data", nargs="*", help="one event each; none: read stdin lines")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="publish: %(message)s")

    refused = 0
    try:
        with Publisher() as pub:
            if args.data:
                results = pub.publish_many([(args.topic, d, args.type) for d in args.data])
            else:
                results = (pub.publish_many([(args.topic, line.rstrip("\n"), args.type)])[0]
                           for line in sys.stdin)
            for r in results:
                if isinstance(r, SpoutError):
                    refused += 1
                    print("ERR", r.reason, flush=True)
                else:
                    print("OK", r, flush=True)
    except AuthError as e:
        print("publish: AUTH refused: %s" % e.reason, file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass
    sys.exit(1 if refused else 0)


if __name__ == "__main__":
    main()
