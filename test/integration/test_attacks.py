"""Attacks on a locked-down broker (issue 7), each with the answer it must
get. One spoutd is started the way docs/security.md suggests for an
exposed node (JWT required, publisher token, per-address and head limits,
short timeouts so the test is quick); every attack runs against it, its
answer is checked, and the table of what was tried and what came back is
written to test/artifacts/attacks.md (docs/security.md 7 quotes it). The
broker must still serve an honest client afterwards and exit cleanly."""
import os
import socket
import time

from harness import (ARTIFACTS, Broker, Publisher, SSEClient, check, eq, raw_http, test,
                     wait_for)
import jwtmint

SECRET = "attack-test-secret-0123456789abcdef0123"
PUB_TOKEN = "pub-token-for-the-attack-test"


def _claims(topics, ttl=600):
    return {"sub": "a", "exp": int(time.time()) + ttl, "topics": topics}


def _http(b, raw, **kw):
    r = raw_http(b.http_port, raw, timeout=kw.pop("timeout", 5.0), **kw)
    if r.status is None:
        return r.how
    first = r.body.split(b"\n", 1)[0].decode("utf-8", "replace")
    return "%d %s" % (r.status, first)


def _get(b, path, headers="", **kw):
    return _http(b, ("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, headers)).encode(), **kw)


def _pub_lines(b, data, n, auth=True):
    with Publisher(b.pub_port) as p:
        if auth:
            p.send_raw(("AUTH %s\n" % PUB_TOKEN).encode())
            p.expect_line("OK")
        p.send_raw(data)
        out = []
        for _ in range(n):
            line = p.read_line(timeout=5)
            if line is None:
                out.append("(closed)")
                break
            out.append(line)
        return out


def _slowloris(b):
    s = socket.create_connection(("127.0.0.1", b.http_port))
    s.settimeout(0.2)
    head = b"GET /events/news HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 200
    got = b""
    t0 = time.monotonic()
    try:
        for byte in head:
            s.send(bytes([byte]))
            try:
                got += s.recv(4096)
                break
            except socket.timeout:
                pass
            if time.monotonic() - t0 > 10:
                break
        if not got:
            s.settimeout(5)
            got = s.recv(4096)
    finally:
        s.close()
    line = got.split(b"\r\n", 1)[0].decode("latin-1")
    return "%s after %.1f s" % (line.split(" ", 1)[1] if " " in line else line,
                                time.monotonic() - t0)


def _never_reading_subscriber(b, tok):
    c = SSEClient(b.http_port, "/events/news?token=" + tok, rcvbuf=4096)
    c.wait_head()
    before = b.metric('spout_connections_shed_total{reason="write_timeout"}')
    with Publisher(b.pub_port) as p:
        p.send_raw(("AUTH %s\n" % PUB_TOKEN).encode())
        p.expect_line("OK")
        for i in range(80):   # within --pub-max-rate's one-second burst
            p.pub("news", "x" * 4000)
    wait_for(lambda: b.metric('spout_connections_shed_total{reason="write_timeout"}') > before,
             10, what="the stalled reader to be shed")
    c.close()
    return "shed after --write-timeout-ms (spout_connections_shed_total{reason=\"write_timeout\"} +1)"


@test(timeout=120)
def attacks_get_the_documented_answers():
    keys = jwtmint.Keys()
    flags = ["--jwt-public-key", keys.ec_pub, "--jwt-secret", SECRET, "--pub-token", PUB_TOKEN,
             "--max-conns-per-ip", "20", "--header-timeout-ms", "1500",
             "--write-timeout-ms", "1000", "--sndbuf", "4096", "--pub-max-rate", "100",
             "--pub-max-conns", "8", "--pub-idle-timeout-ms", "1000", "--max-topics", "4"]
    good = jwtmint.hs(SECRET, _claims(["news", "orders.eu.>"]))
    rows = []

    def attack(name, fn, expect):
        got = fn()
        ok = expect(got)
        rows.append((name, got, ok))
        check(ok, "%s: got %r" % (name, got))

    try:
        with Broker(*flags) as b:
            starts = lambda *p: (lambda g: isinstance(g, str) and g.startswith(p))
            # ---- HTTP: malformed and oversized requests
            attack("slowloris: head sent one byte per 200 ms", lambda: _slowloris(b),
                   starts("408"))
            attack("20 KB request head", lambda: _get(b, "/events/news", "X-Pad: %s\r\n"
                                                        % ("a" * 20000)), starts("431"))
            attack("100 header fields", lambda: _get(b, "/events/news", "".join(
                "X-%d: v\r\n" % i for i in range(100))), starts("431"))
            attack("5 KB request target", lambda: _get(b, "/events/" + "a" * 5000),
                   starts("414"))
            attack("request smuggling: two Content-Length", lambda: _http(
                b, b"GET /events/news HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                b"Content-Length: 5\r\n\r\n"), starts("400"))
            attack("request smuggling: Content-Length + Transfer-Encoding", lambda: _http(
                b, b"GET /events/news HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"), starts("400"))
            attack("TLS ClientHello on the HTTP port", lambda: _http(
                b, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64),
                starts("400"))
            attack("HTTP/2 connection preface", lambda: _http(
                b, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), starts("505", "400"))
            attack("path traversal as a topic", lambda: _get(b, "/events/..%2F..%2Fetc%2Fpasswd"),
                   starts("400"))
            attack("CRLF injection in a topic", lambda: _get(b, "/events/a%0d%0aSet-Cookie:x"),
                   starts("400"))
            attack("NUL in a topic", lambda: _get(b, "/events/a%00b"), starts("400"))
            attack("more topics than --max-topics", lambda: _get(
                b, "/events?" + "&".join("topic=t%d" % i for i in range(5)) + "&token=" + good),
                starts("400"))
            attack("unknown method", lambda: _http(
                b, b"DELETE /events/news HTTP/1.1\r\nHost: x\r\n\r\n"), starts("405"))
            # ---- HTTP: authentication and authorisation
            attack("no token", lambda: _get(b, "/events/news"), starts("401 token required"))
            attack("alg none", lambda: _get(b, "/events/news?token=" + jwtmint.none_alg(
                _claims([">"]))), starts("401 token algorithm not accepted"))
            attack("HS256 signed with the server's public key", lambda: _get(
                b, "/events/news?token=" + jwtmint.hs(keys.public_pem("ec"), _claims([">"]))),
                starts("401 token signature invalid"))
            attack("RS256 with an unknown key", lambda: _get(
                b, "/events/news?token=" + keys.rs256(_claims([">"]))),
                starts("401 token signature invalid"))
            attack("forged payload under a genuine signature", lambda: _get(
                b, "/events/news?token=" + ".".join([
                    good.split(".")[0],
                    jwtmint.b64url(b'{"topics":[">"],"exp":9999999999}'),
                    good.split(".")[2]])), starts("401 token signature invalid"))
            attack("expired token", lambda: _get(b, "/events/news?token=" + jwtmint.hs(
                SECRET, _claims(["news"], ttl=-30))), starts("401 token expired"))
            attack("token for another topic", lambda: _get(b, "/events/sport?token=" + good),
                   starts("403 token does not grant"))
            attack("widening a granted pattern (orders.eu.> -> orders.>)",
                   lambda: _get(b, "/events/orders.%3E?token=" + good), starts("403"))
            attack("Basic credentials instead of a bearer token",
                   lambda: _get(b, "/events/news", "Authorization: Basic YTpi\r\n"),
                   starts("401 Authorization must be"))
            attack("6 KB garbage bearer token", lambda: _get(
                b, "/events/news", "Authorization: Bearer %s\r\n" % ("A" * 6000)),
                starts("401 malformed token"))
            attack("8 KB token in the query", lambda: _get(b, "/events/news?token=" + "A" * 8000),
                   starts("414"))
            # ---- HTTP: addresses and floods
            attack("X-Forwarded-For spoofed by an untrusted client", lambda: _get(
                b, "/healthz", "X-Forwarded-For: 1.2.3.4\r\n", src="127.0.0.70"),
                starts("200"))  # accepted, but the header is ignored (see next)
            def conn_flood():
                held = [SSEClient(b.http_port, "/events/news?token=" + good, src="127.0.0.71")
                        for _ in range(20)]
                for c in held:
                    c.wait_head()
                r = _get(b, "/events/news?token=" + good, "X-Forwarded-For: 9.9.9.9\r\n",
                         src="127.0.0.71")
                for c in held:
                    c.close()
                return r
            attack("21 streams from one address (cap 20), the 21st with a spoofed XFF",
                   conn_flood, starts("429 too many connections from your address"))
            attack("PROXY header from an untrusted peer", lambda: _http(
                b, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
                starts("400"))
            attack("a subscriber that never reads", lambda: _never_reading_subscriber(b, good),
                   starts("shed"))
            # ---- publishers
            attack("publish without AUTH", lambda: _pub_lines(b, b"PUB news x\n", 1, auth=False),
                   lambda g: g == ["ERR auth required: send AUTH <token> first"])
            attack("wrong publisher token", lambda: _pub_lines(
                b, b"AUTH guess\nPUB news x\n", 2, auth=False),
                lambda g: g == ["ERR auth failed", "(closed)"])
            def flood():
                g = _pub_lines(b, b"".join(b"PUB news f%d\n" % i for i in range(300)), 300)
                return "%d x OK, then %d x ERR rate limit" % (
                    sum(l.startswith("OK") for l in g),
                    sum(l.startswith("ERR rate limit") for l in g))
            attack("300 pipelined publishes over --pub-max-rate 100/s", flood,
                   lambda g: int(g.split(" ")[0]) <= 110 and int(g.split(", then ")[1].split(" ")[0]) >= 190)
            attack("200 KB command line", lambda: _pub_lines(b, b"PUB news " + b"x" * 200000
                                                             + b"\nPING\n", 2),
                   lambda g: g == ["ERR line too long", "PONG"])
            attack("EVENT declaring a 1 GB payload", lambda: _pub_lines(
                b, b"EVENT news t 1000000000\nPING\n", 1),
                lambda g: g[0].startswith("ERR payload too large"))
            attack("EVENT declaring a 2^60-byte payload", lambda: _pub_lines(
                b, b"EVENT news t 1152921504606846976\nPING\n", 2),
                lambda g: g == ["ERR invalid payload length", "PONG"])
            attack("binary garbage", lambda: _pub_lines(b, b"\x00\xff\xfe garbage\nPING\n", 2),
                   lambda g: g[0].startswith("ERR") and g[1] == "PONG")
            def idle():
                with Publisher(b.pub_port) as p:
                    p.send_raw(("AUTH %s\n" % PUB_TOKEN).encode())
                    p.expect_line("OK")
                    return [p.read_line(timeout=5), p.read_line(timeout=5) or "(closed)"]
            attack("idle publisher connection", idle,
                   lambda g: g == ["ERR idle timeout", "(closed)"])
            def pub_flood():
                conns = [Publisher(b.pub_port) for _ in range(8)]
                try:
                    with Publisher(b.pub_port) as extra:
                        return extra.read_line(timeout=5)
                finally:
                    for c in conns:
                        c.close()
            attack("9 publisher connections (cap 8)", pub_flood,
                   starts("ERR too many publisher connections"))
            # ---- still serving honest clients
            c = b.sse("/events/news?token=" + good)
            eq(c.wait_head().status, 200, "an honest subscriber after all that")
            with Publisher(b.pub_port) as p:
                p.send_raw(("AUTH %s\n" % PUB_TOKEN).encode())
                p.expect_line("OK")
                i = p.pub("news", "still here")
            eq(int(c.expect_events(1)[0].id), i, "delivered")
            c.close()
    finally:
        keys.close()
        os.makedirs(ARTIFACTS, exist_ok=True)
        with open(os.path.join(ARTIFACTS, "attacks.md"), "w") as f:
            f.write("| attack | answer | as expected |\n|---|---|---|\n")
            for name, got, ok in rows:
                g = " / ".join(got) if isinstance(got, list) else str(got)
                if len(g) > 90:
                    g = g[:87] + "..."
                f.write("| %s | `%s` | %s |\n" % (name, g.replace("|", "\\|"), "yes" if ok else "**NO**"))
