#!/usr/bin/env python3
"""Subscribe to spout topics, resuming after every disconnect. Standard
library only.

    python3 subscribe.py news 'orders.*.created'
    python3 subscribe.py --last-event-id 1795567982000042 news   # resume a stored position

Environment: SPOUT_URL (default http://localhost:8080) and SPOUT_TOKEN (a
JWT, sent as "Authorization: Bearer", when the broker requires one).
Prints one JSON object per event on stdout: {"id": ..., "event": ..., "data": ...}.
"""
import argparse
import http.client
import json
import logging
import os
import random
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import namedtuple

URL = os.environ.get("SPOUT_URL", "http://localhost:8080")
READ_TIMEOUT = 45.0       # seconds without a byte; > 2 x the broker's --heartbeat-ms
MAX_BACKOFF = 60.0        # seconds

log = logging.getLogger("spout.subscribe")

# type: "message" unless the event had an "event:" field; id: the last event
# id after this event (EventSource's lastEventId): the id it carried, or the
# one before it if it carried none (spout-gap).
Event = namedtuple("Event", "type data id")


class SSEParser:
    """The event-stream parser of the WHATWG HTML standard (9.2.6): feed it
    bytes as they arrive, get the complete events back."""

    _EOL = re.compile(rb"[\r\n]")

    def __init__(self, last_event_id=""):
        self.last_event_id = last_event_id   # carried over from the previous connection
        self.retry_ms = None                 # the latest valid "retry:" field
        self._id = last_event_id
        self._data = []
        self._type = ""
        self._buf = b""
        self._skip_lf = False                # the previous chunk ended in CR
        self._first = True

    def feed(self, chunk):
        buf, pos, events = self._buf + chunk, 0, []
        while True:
            if self._skip_lf and pos < len(buf):
                self._skip_lf = False
                if buf[pos:pos + 1] == b"\n":     # CRLF split across chunks
                    pos += 1
            m = self._EOL.search(buf, pos)
            if m is None:
                break
            line, pos = buf[pos:m.start()], m.end()
            if m.group() == b"\r":
                if buf[pos:pos + 1] == b"\n":
                    pos += 1
                elif pos == len(buf):
                    self._skip_lf = True
            event = self._line(line.decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        self._buf = buf[pos:]
        return events

    def _line(self, line):
        if self._first:
            self._first = False
            if line.startswith("\ufeff"):
                line = line[1:]
        if line == "":
            return self._dispatch()
        if line.startswith(":"):               # a comment: ":ok", heartbeats
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._type = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self.retry_ms = int(value)
        return None                              # any other field is ignored

    def _dispatch(self):
        self.last_event_id = self._id            # persists: not reset per event
        data, etype = self._data, self._type
        self._data, self._type = [], ""
        if not data:
            return None
        return Event(etype or "message", "\n".join(data), self.last_event_id)


class Fatal(Exception):
    """Retrying cannot help (bad topic, bad or insufficient token)."""


def subscribe(topics, base_url=URL, token=None, last_event_id=""):
    """Yield Events from spout for ever, reconnecting with Last-Event-ID, so
    that each event arrives once, in order, or a spout-gap says what could
    not be replayed. token: a JWT, or a function returning a fresh one (it is
    called before every connection)."""
    url = "%s/events?%s" % (base_url.rstrip("/"),
                            urllib.parse.urlencode([("topic", t) for t in topics]))
    retry_ms = 3000         # until the broker sends "retry:"
    failures = 0
    while True:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        tok = token() if callable(token) else token
        if tok:
            headers["Authorization"] = "Bearer " + tok
        wait_s = None
        try:
            req = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(req, timeout=READ_TIMEOUT) as resp:
                ctype = resp.headers.get("Content-Type", "")
                if not ctype.startswith("text/event-stream"):
                    raise Fatal("%s is not an event stream (%s)" % (url, ctype))
                log.info("connected to %s (Last-Event-ID: %s)", url, last_event_id or "none")
                failures = 0
                parser = SSEParser(last_event_id)
                while True:
                    chunk = resp.read1(65536)
                    if not chunk:
                        break        # the broker ended the stream (restart, drain, token expiry)
                    for event in parser.feed(chunk):
                        last_event_id = parser.last_event_id
                        yield event
                    last_event_id = parser.last_event_id
                    if parser.retry_ms is not None:
                        retry_ms = parser.retry_ms
            log.warning("stream ended")
        except urllib.error.HTTPError as e:
            reason = e.read(500).decode("utf-8", "replace").strip()
            if e.code not in (408, 429) and e.code < 500:
                raise Fatal("HTTP %d %s" % (e.code, reason)) from None
            log.warning("HTTP %d %s", e.code, reason)
            after = e.headers.get("Retry-After", "")
            wait_s = int(after) if after.isdigit() else None
        except (OSError, http.client.HTTPException) as e:   # refused, reset, timeout
            log.warning("connection lost: %s", e)
        failures += 1
        # the broker's retry: (already jittered per connection), doubled
        # while attempts keep failing, plus up to 50 % of our own jitter
        delay = min(MAX_BACKOFF, retry_ms / 1000 * 2 ** (failures - 1))
        delay = max(delay, wait_s or 0) * random.uniform(1.0, 1.5)
        log.info("reconnecting in %.1fs", delay)
        time.sleep(delay)


def main():
    ap = argparse.ArgumentParser(description="Subscribe to spout topics.")
    ap.add_argument("--last-event-id", default="", help="resume after this id")
    ap.add_argument("topics", nargs="+", metavar="TOPIC", help="topic or pattern")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="subscribe: %(message)s")

    def token():            # asked before every connection: refresh it here if it expires
        return os.environ.get("SPOUT_TOKEN")

    try:
        for ev in subscribe(args.topics, token=token, last_event_id=args.last_event_id):
            if ev.type == "spout-gap":
                # History no longer reaches back to our last id (or the broker
                # restarted): some events were missed. Reload the state they
                # built from its source of truth; the stream goes on from here.
                gap = json.loads(ev.data)
                log.warning("missed events after id %s (%s): resynchronise",
                            gap.get("last_event_id"), gap.get("reason"))
            print(json.dumps({"id": ev.id, "event": ev.type, "data": ev.data}), flush=True)
    except Fatal as e:
        sys.exit("subscribe: %s" % e)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
