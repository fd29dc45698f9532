"""The publisher line protocol: replies, errors that keep the connection
usable, pipelining, framing edge cases."""
import socket
import time

from harness import Broker, check, eq, test, wait_for


def _err(line):
    return line is not None and line.startswith("ERR ") and len(line) > 4


def expect_err(p, what, contains=None):
    line = p.read_line(3)
    check(_err(line), "%s: reply %r, want ERR <reason>" % (what, line))
    if contains:
        check(contains in line, "%s: reply %r, want it to mention %r" % (what, line, contains))
    return line


def still_usable(p, b, topic="after.err"):
    p.ping(3)
    c = b.sse("/events/" + topic)
    try:
        c.wait_head()
        i = p.pub(topic, "ok")
        ev = c.expect_events(1, 3)[0]
        eq((ev.id, ev.data), (str(i), "ok"), "PUB after an error")
    finally:
        c.close()


@test
def pub_ok_without_subscriber_and_ping():
    with Broker() as b, b.publisher() as p:
        i = p.pub("nobody.listens", "x")
        check(i >= 1, "id %d" % i)
        p.ping()
        eq(p.pub("nobody.listens", ""), i + 1, "empty payload is published")
        m = b.metrics()
        eq(m["spout_events_published_total"], 2, "events_published_total")


@test
def pub_unknown_command():
    with Broker() as b, b.publisher() as p:
        for bad in (b"FOO bar\n", b"pub t x\n", b"PUBLISH t x\n", b"PING extra\n", b" PUB t x\n"):
            p.send_raw(bad)
            expect_err(p, repr(bad))
        still_usable(p, b)


@test
def pub_missing_topic():
    with Broker() as b, b.publisher() as p:
        for bad in (b"PUB\n", b"PUB \n", b"PUB  data\n"):
            p.send_raw(bad)
            expect_err(p, repr(bad))
        still_usable(p, b)


@test
def pub_invalid_topic():
    with Broker() as b, b.publisher() as p:
        c = b.sse("/events/a")
        c.wait_head()
        for bad in (b"PUB a..b x\n", b"PUB .a x\n", b"PUB a. x\n", b"PUB a*b x\n",
                    b"PUB a/b x\n", b"PUB " + b"t" * 129 + b" x\n", b"PUB a\xffb x\n"):
            p.send_raw(bad)
            expect_err(p, repr(bad[:40]))
        c.expect_no_event(0.2)
        c.close()
        still_usable(p, b)
        eq(b.metrics()["spout_events_published_total"], 1, "only the good PUB counted")


@test
def pub_payload_too_large():
    with Broker("--max-payload", "100") as b, b.publisher() as p:
        c = b.sse("/events/big")
        c.wait_head()
        i = p.pub("big", "y" * 100)                       # exactly the limit
        eq(c.expect_events(1)[0].data, "y" * 100, "100-byte payload")
        p.send_raw(b"PUB big " + b"z" * 101 + b"\n")
        expect_err(p, "PUB with 101-byte payload", "too large")
        # EVENT with an oversized payload: answered once, and the payload
        # (which looks like commands) is skipped, not executed
        payload = (b"PUB big evil\n" * 10)[:120]
        p.send_raw(b"EVENT big - %d\n" % len(payload) + payload + b"\n")
        expect_err(p, "EVENT with 120-byte payload", "too large")
        p.ping()
        c.expect_no_event(0.3)
        j = p.pub("big", "after")
        ev = c.expect_events(1)[0]
        eq((ev.id, ev.data), (str(j), "after"), "event after the errors")
        eq(j, i + 1, "no id was used by the rejected commands")
        c.close()


@test
def pub_line_too_long():
    with Broker("--max-line", "128") as b, b.publisher() as p:
        c = b.sse("/events/t")
        c.wait_head()
        p.send_raw(b"PUB t " + b"x" * 300)          # no line break yet
        expect_err(p, "over-long line", "line too long")
        p.send_raw(b"x" * 300 + b" PUB t sneaky\nPING\n")
        eq(p.read_line(3), "PONG", "first reply after the rest of the long line")
        c.expect_no_event(0.3)
        # an over-long line sent whole, followed by commands in the same write
        p.send_raw(b"PUB t " + b"q" * 200 + b"\nPUB t fine\n")
        expect_err(p, "over-long line (whole)", "line too long")
        i = p._ok_id(p.read_line(3), "PUB after the long line")
        ev = c.expect_events(1)[0]
        eq((ev.id, ev.data), (str(i), "fine"), "event after the long line")
        c.close()
        still_usable(p, b)


@test
def pub_event_bad_length():
    with Broker() as b, b.publisher() as p:
        c = b.sse("/events/e")
        c.wait_head()
        for bad in (b"EVENT e - abc\n", b"EVENT e - -1\n", b"EVENT e - 1x\n",
                    b"EVENT e - 9999999999999999999999\n", b"EVENT e -\n", b"EVENT e\n",
                    b"EVENT\n", b"EVENT e - \n"):
            p.send_raw(bad)
            expect_err(p, repr(bad))
            p.ping()
        c.expect_no_event(0.2)
        i = p.event("e", "ok", b"fine")
        ev = c.expect_events(1)[0]
        eq((ev.id, ev.event, ev.data), (str(i), "ok", "fine"), "EVENT after the errors")
        c.close()


@test
def pub_pipelined_in_order():
    with Broker() as b, b.publisher() as p:
        c = b.sse("/events/pp")
        c.wait_head()
        p.send_raw(b"PUB pp one\nPING\nBOGUS\nEVENT pp kind 3\nt\nw\nPUB a..b x\nPUB pp three\nQUIT\n"
                   b"PUB pp never\n")
        first = p._ok_id(p.read_line(), "reply 1")
        eq(p.read_line(), "PONG", "reply 2")
        check(_err(p.read_line()), "reply 3 should be ERR")
        eq(p.read_line(), "OK %d" % (first + 1), "reply 4")
        check(_err(p.read_line()), "reply 5 should be ERR")
        eq(p.read_line(), "OK %d" % (first + 2), "reply 6")
        eq(p.read_line(), "OK bye", "reply 7")
        p.expect_closed(2)
        evs = c.expect_events(3)
        eq([(e.id, e.event, e.data) for e in evs],
           [(str(first), None, "one"), (str(first + 1), "kind", "t\nw"), (str(first + 2), None, "three")], "events")
        c.expect_no_event(0.3)
        c.close()
        with b.publisher() as p2:
            replies = p2.pipeline([b"PUB pp n%d\n" % k for k in range(500)] + [b"PING\n"])
            eq(replies[:500], ["OK %d" % k for k in range(first + 3, first + 503)],
               "500 pipelined replies")
            eq(replies[500], "PONG", "last reply")


@test
def pub_crlf_accepted():
    with Broker() as b, b.publisher() as p:
        c = b.sse("/events/crlf")
        c.wait_head()
        p.send_raw(b"PUB crlf hello\r\n")
        i = p._ok_id(p.read_line(), "PUB with CRLF")
        p.send_raw(b"PING\r\n")
        eq(p.read_line(), "PONG", "PING with CRLF")
        p.send_raw(b"EVENT crlf t 2\r\nab\r\n")
        j = p._ok_id(p.read_line(), "EVENT with CRLF")
        evs = c.expect_events(2)
        eq([(e.id, e.data) for e in evs], [(str(i), "hello"), (str(j), "ab")], "events")
        check(b"\r" not in c.body.replace(b"\r\n", b""), "CR in stream: %r" % c.body)
        p.send_raw(b"QUIT\r\n")
        eq(p.read_line(), "OK bye", "QUIT with CRLF")
        p.expect_closed(2)
        c.close()


@test
def pub_quit_closes():
    with Broker() as b:
        p = b.publisher()
        p.send_raw(b"QUIT\n")
        eq(p.read_line(), "OK bye", "QUIT reply")
        p.expect_closed(2)
        p.close()
        wait_for(lambda: b.metrics()["spout_publishers_open"] == 0, 3, what="publishers_open 0")


@test
def pub_disconnect_mid_line_publishes_nothing():
    with Broker() as b:
        c = b.sse("/events/mid")
        c.wait_head()
        with b.publisher() as p0:
            probe = p0.pub("probe", "x")   # the id just before the partials
        before = b.metrics()["spout_events_published_total"]
        for partial in (b"PUB mid partial-without-newline", b"EVENT mid - 10\nabc",
                        b"EVENT mid - 3\nabc", b"PUB mid x\r"):
            p = b.publisher()
            p.send_raw(partial)
            time.sleep(0.05)
            p.close()
        # half-close (FIN) mid-line too
        s = socket.create_connection(("127.0.0.1", b.pub_port), timeout=3)
        s.sendall(b"PUB mid half")
        s.shutdown(socket.SHUT_WR)
        s.settimeout(3)
        try:
            rest = s.recv(100)
        except OSError:
            rest = b""
        s.close()
        eq(rest, b"", "reply to a half-closed partial line")
        wait_for(lambda: b.metrics()["spout_publishers_open"] == 0, 3, what="publishers closed")
        eq(b.metrics()["spout_events_published_total"], before, "events_published_total")
        with b.publisher() as p:
            i = p.pub("mid", "sentinel")
        ev = c.expect_events(1)[0]
        eq((ev.id, ev.data), (str(i), "sentinel"), "first event the subscriber sees")
        eq(i, probe + 1, "sentinel id (no id consumed by partial commands)")
        c.close()


@test
def pub_empty_and_nul_lines():
    with Broker() as b, b.publisher() as p:
        p.send_raw(b"\n")
        expect_err(p, "empty line")
        p.send_raw(b"PUB t a\x00b\n")
        expect_err(p, "NUL in line")
        still_usable(p, b)


@test
def pub_half_close_gets_every_reply():
    """A publisher that writes a batch and half-closes (like `nc -N`) gets
    every reply, then EOF, and every command is published."""
    with Broker() as b:
        n = 5000
        s = socket.create_connection(("127.0.0.1", b.pub_port), timeout=5)
        s.sendall(b"".join(b"PUB hc.t%d v%d\n" % (k % 3, k) for k in range(n)))
        s.shutdown(socket.SHUT_WR)
        buf = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                x = s.recv(65536)
            except socket.timeout:
                break
            if not x:
                break
            buf += x
        s.close()
        lines = buf.decode().splitlines()
        eq(len(lines), n, "replies before EOF")
        first = int(lines[0][3:])
        eq(lines[-1], "OK %d" % (first + n - 1), "last reply")
        eq(b.metrics()["spout_events_published_total"], n, "events_published_total")


@test
def pub_split_across_writes():
    """Commands trickled a few bytes at a time parse exactly like whole ones."""
    with Broker() as b, b.publisher() as p:
        c = b.sse("/events/sp")
        c.wait_head()
        stream = (b"PUB sp one\r\nEVENT sp typ 7\r\nab\ncd\re\r\nPING\nEVENT sp - 0\n\n")
        for k in range(0, len(stream), 3):
            p.send_raw(stream[k:k + 3])
            time.sleep(0.01)
        first = p._ok_id(p.read_line(), "reply 1")
        eq(p.read_line(), "OK %d" % (first + 1), "reply 2")
        eq(p.read_line(), "PONG", "reply 3")
        eq(p.read_line(), "OK %d" % (first + 2), "reply 4")
        evs = c.expect_events(3)
        eq([(e.id, e.event, e.data) for e in evs],
           [(str(first), None, "one"), (str(first + 1), "typ", "ab\ncd\ne"), (str(first + 2), None, "")], "events")
        c.close()
