"""Locking the broker down (issue 7): the publisher token (AUTH, constant-
time compare, a wrong token closes the connection), the token file, and
the start-up rule that keeps a token-less publisher port on loopback."""
import contextlib
import os
import sys
import tempfile

from harness import Broker, check, eq, free_port, run_spoutd, test

TOKEN = "s3cr3t-Token_with.punct~!"


@test
def publisher_must_authenticate_first():
    with Broker("--pub-token", TOKEN) as b:
        with b.publisher() as p:
            p.send_raw(b"PUB news early\nPING\nEVENT news t 2\nhi\n")
            line = p.read_line()
            check(line.startswith("ERR auth required"), "PUB before AUTH: %r" % line)
            p.expect_line("PONG")   # health checks may PING without a token
            line = p.read_line()
            check(line.startswith("ERR auth required"), "EVENT before AUTH: %r" % line)
            p.send_raw(("AUTH %s\n" % TOKEN).encode())
            p.expect_line("OK")
            check(p.pub("news", "after") > 0, "publishes once authenticated")
            p.send_raw(b"PING\n")
            p.expect_line("PONG")
        with b.sse("/events/news") as c:
            eq(c.wait_head().status, 200, "status")
            with b.publisher() as p:
                p.send_raw(("AUTH %s\nPUB news live\n" % TOKEN).encode())
                p.expect_line("OK")
                live = p.read_line()
                check(live.startswith("OK "), "publish after AUTH: %r" % live)
            ev = c.expect_events(1)[0]
            eq(ev.data, "live", "event from an authenticated publisher")
        eq(b.metric("spout_publisher_auth_failures_total"), 0, "no failures yet")


@test
def wrong_token_is_refused_and_the_connection_closed():
    with Broker("--pub-token", TOKEN) as b:
        bad = [TOKEN[:-1], TOKEN + "x", "x" * len(TOKEN), TOKEN.upper()]
        for guess in bad:
            with b.publisher() as p:
                p.send_raw(("AUTH %s\nPUB news sneaky\n" % guess).encode())
                p.expect_line("ERR auth failed")
                p.expect_closed()
        eq(b.metric("spout_publisher_auth_failures_total"), len(bad), "failures counted")
        with b.publisher() as p:
            p.send_raw(b"AUTH\nAUTH two words\nQUIT\n")
            p.expect_line("ERR missing token")
            p.expect_line("ERR invalid character in token")
            p.expect_line("OK bye")
            p.expect_closed()


@test
def auth_without_a_configured_token_says_so():
    with Broker() as b:
        with b.publisher() as p:
            p.send_raw(b"AUTH whatever\n")
            p.expect_line("ERR auth not enabled")
            check(p.pub("news", "x") > 0, "publishing needs no token here")


@test
def token_file_and_its_errors():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "token")
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        with Broker("--pub-token-file", path) as b:
            with b.publisher() as p:
                p.send_raw(b"PUB a x\n")
                check(p.read_line().startswith("ERR auth required"), "token from the file")
                p.send_raw(("AUTH %s\n" % TOKEN).encode())
                p.expect_line("OK")
        with open(path, "w") as f:
            f.write("two words\n")
        for args, want in (([ "--pub-token-file", path], "first line must be the token"),
                           (["--pub-token-file", os.path.join(d, "missing")], "No such file"),
                           (["--pub-token-file", path, "--pub-token", TOKEN], "not both"),
                           (["--pub-token", "has space"], "pub-token")):
            rc, _, err = run_spoutd(args)
            eq(rc, 2, "exit status for %s" % args)
            check(want in err, "stderr for %s names the problem: %r" % (args, err))


@test
def non_loopback_publisher_port_needs_a_token():
    rc, _, err = run_spoutd(["--pub", "0.0.0.0:0"])
    eq(rc, 2, "exit status")
    check("not a loopback address" in err and "--pub-insecure" in err,
          "stderr explains: %r" % err)
    rc, _, err = run_spoutd(["--pub", "[::]:0"])
    eq(rc, 2, "exit status, IPv6 any")
    # With a token, or an explicit --pub-insecure, it starts on the
    # wildcard address (the harness reaches it through 127.0.0.1).
    for extra in (["--pub-token", TOKEN], ["--pub-insecure"]):
        with _wildcard_broker(*extra) as b:
            with b.publisher() as p:
                p.send_raw(b"PUB t x\n")
                want = "ERR auth required" if extra[0] == "--pub-token" else "OK "
                check(p.read_line().startswith(want), "serves with %s" % extra)


@contextlib.contextmanager
def _wildcard_broker(*flags):
    """A Broker whose --pub is 0.0.0.0:<port>. The port is fixed for the
    harness (which connects through 127.0.0.1), so its own retry on a port
    taken meanwhile cannot pick another: retry here with a fresh one."""
    b = None
    for _attempt in range(5):
        cand = Broker("--pub", "0.0.0.0:%d" % free_port("0.0.0.0"), *flags)
        cand.fixed_ports = (None, int(cand.flags[1].rsplit(":", 1)[1]))
        try:
            b = cand.__enter__()
            break
        except AssertionError as e:
            if "could not start" not in str(e):
                raise
    check(b is not None, "no free wildcard port in 5 tries")
    try:
        yield b
    except BaseException:
        b.__exit__(*sys.exc_info())
        raise
    b.__exit__(None, None, None)
