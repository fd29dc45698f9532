"""Per-client limits and real client addresses (issue 7): connections per
address (and the PROXY protocol v1/v2 or X-Forwarded-For of a trusted
proxy deciding which address that is, with a real HAProxy sending v2),
request head limits, and the publisher limits: idle timeout, AUTH
deadline, rate and connection caps."""
import os
import socket
import struct
import subprocess
import time

from cluster import HAPROXY
from harness import (ARTIFACTS, Broker, SSEClient, check, eq, free_port, kill_pid, raw_http,
                     spawn, test, wait_for)

GET = b"GET /events/t HTTP/1.1\r\nHost: x\r\n\r\n"
# The trusted proxy's address: not 127.0.0.1, which the harness itself
# connects from (its readiness checks send no PROXY header).
PROXY = "127.0.0.40"


def _stream(b, src, extra=b"", path="/events/t", headers=""):
    """Open a stream from source address <src>, optionally after <extra>
    bytes (a PROXY header). Returns the SSEClient once its head is in."""
    req = extra + ("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, headers)).encode()
    c = SSEClient(b.http_port, path, src=src, request=req)
    c.wait_head()
    return c


def _v1(src, sport=40000):
    fam = "TCP6" if ":" in src else "TCP4"
    dst = "::1" if ":" in src else "127.0.0.1"
    return ("PROXY %s %s %s %d 8080\r\n" % (fam, src, dst, sport)).encode()


def _v2(src, sport=40000, command=1):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    body = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", sport, 8080)
    return sig + bytes([0x20 | command, 0x11]) + struct.pack("!H", len(body)) + body


@test
def connections_per_address_are_capped():
    with Broker("--max-conns-per-ip", "3") as b:
        held = [_stream(b, "127.0.0.5") for _ in range(3)]
        for c in held:
            eq(c.head.status, 200, "within the cap")
        over = _stream(b, "127.0.0.5")
        eq(over.head.status, 429, "the 4th from one address")
        eq(over.head.headers.get("retry-after"), "10", "Retry-After")
        over.wait_end(2)
        check(b"too many connections from your address" in over.raw_body, over.raw_body)
        other = _stream(b, "127.0.0.6")
        eq(other.head.status, 200, "another address is not affected")
        held[0].close()
        refused = [1]    # the 4th above; more while the close is on its way

        def reopened():
            c = _stream(b, "127.0.0.5")
            held.append(c)
            if c.head.status == 429:
                refused[0] += 1
            return c.head.status == 200
        wait_for(reopened, 5, what="a slot freed by a close is usable again")
        eq(b.metric('spout_limit_rejections_total{limit="conns_per_ip"}'), refused[0],
           "every 429 counted")
        check(b.metric("spout_client_addresses") >= 2, "addresses tracked")
        for c in held[1:] + [over, other]:
            c.close()


@test
def proxy_protocol_names_the_client():
    with Broker("--max-conns-per-ip", "1", "--trusted-proxy", PROXY,
                "--proxy-protocol") as b:
        a1 = _stream(b, PROXY, _v1("203.0.113.9"))
        eq(a1.head.status, 200, "v1 from the trusted proxy")
        a2 = _stream(b, PROXY, _v2("203.0.113.9", 40001))
        eq(a2.head.status, 429, "the same client again (v2): its own cap, not the proxy's")
        other = _stream(b, PROXY, _v2("198.51.100.4"))
        eq(other.head.status, 200, "another client through the same proxy")
        six = _stream(b, PROXY, _v1("2001:db8::7"))
        eq(six.head.status, 200, "v6 client")
        same64 = _stream(b, PROXY, _v1("2001:db8::8"))
        eq(same64.head.status, 429, "same /64")
        local = _stream(b, PROXY, _v2("0.0.0.0", 0, command=0), path="/healthz")
        eq(local.head.status, 200, "LOCAL (a health check) keeps the proxy's address, uncounted")
        # a header split over several writes
        c = SSEClient(b.http_port, "/events/t", src=PROXY, send=False)
        hdr = _v1("192.0.2.77") + GET
        for piece in (hdr[:3], hdr[3:20], hdr[20:]):
            c.send(piece)
            time.sleep(0.05)
        eq(c.wait_head().status, 200, "PROXY header and request in pieces")
        # refusals
        r = raw_http(b.http_port, GET, src=PROXY)
        eq(r.status, 400, "the trusted proxy must send the header: %s" % r.describe())
        check(b"not a PROXY protocol header" in r.body, r.describe())
        r = raw_http(b.http_port, b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n" + GET, src=PROXY)
        eq(r.status, 400, "malformed v1: %s" % r.describe())
        # an untrusted peer: plain HTTP, and a PROXY header is not believed
        r = raw_http(b.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", src="127.0.0.9")
        eq(r.status, 200, "untrusted peers speak plain HTTP")
        r = raw_http(b.http_port, _v1("203.0.113.50") + GET, src="127.0.0.9")
        eq(r.status, 400, "a PROXY header from an untrusted peer is not HTTP")
        eq(b.metric('spout_limit_rejections_total{limit="proxy_header"}'), 2, "counted")
        for s in (a1, a2, other, six, same64, local, c):
            s.close()


@test
def x_forwarded_for_from_trusted_proxies_only():
    with Broker("--max-conns-per-ip", "1", "--trusted-proxy", "127.0.0.0/30") as b:
        xff = "X-Forwarded-For: 6.6.6.6, 203.0.113.20\r\n"
        a1 = _stream(b, "127.0.0.2", headers=xff)
        eq(a1.head.status, 200, "first via a trusted proxy")
        a2 = _stream(b, "127.0.0.3", headers="X-Forwarded-For: 203.0.113.20\r\n")
        eq(a2.head.status, 429, "same client through another trusted proxy: counted together")
        a3 = _stream(b, "127.0.0.2", headers="X-Forwarded-For: 203.0.113.21, 127.0.0.1\r\n")
        eq(a3.head.status, 200, "trusted hops are skipped, the client is the next one")
        # from an untrusted peer the header means nothing: counted by peer
        u1 = _stream(b, "127.0.0.9", headers="X-Forwarded-For: 203.0.113.30\r\n")
        u2 = _stream(b, "127.0.0.9", headers="X-Forwarded-For: 203.0.113.31\r\n")
        eq((u1.head.status, u2.head.status), (200, 429), "untrusted XFF ignored")
        r = raw_http(b.http_port, b"GET /events/t HTTP/1.1\r\nHost: x\r\n"
                     b"X-Forwarded-For: 1.2.3.4, not-an-ip\r\n\r\n", src="127.0.0.2")
        eq(r.status, 400, "malformed XFF from a trusted proxy: %s" % r.describe())
        for s in (a1, a2, a3, u1, u2):
            s.close()


HAPROXY_V2 = """\
global
    log stdout format raw local0 info
defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:{fe}
    default_backend be
backend be
    server s1 127.0.0.1:{be} source {src} send-proxy-v2 check check-send-proxy inter 200ms
"""


@test(timeout=30)
def real_haproxy_send_proxy_v2():
    """HAProxy in TCP mode with send-proxy-v2 (and PROXY-wrapped health
    checks): spout caps per real client, not per HAProxy."""
    with Broker("--max-conns-per-ip", "1", "--trusted-proxy", PROXY,
                "--proxy-protocol") as b:
        fe = free_port()
        cfg = os.path.join(ARTIFACTS, "haproxy-v2-%d.cfg" % os.getpid())
        with open(cfg, "w") as f:
            f.write(HAPROXY_V2.format(fe=fe, be=b.http_port, src=PROXY))
        log = open(os.path.join(ARTIFACTS, "haproxy-v2-%d.log" % os.getpid()), "wb")
        hp = spawn([HAPROXY, "-f", cfg, "-db"], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            def forwarding():
                try:
                    return raw_http(fe, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                                    timeout=1.0, src="127.0.0.30").status == 200
                except OSError:
                    return False
            wait_for(forwarding, 10, what="haproxy forwarding")
            c1 = SSEClient(fe, "/events/t", src="127.0.0.31")
            eq(c1.wait_head().status, 200, "first client through haproxy")
            c2 = SSEClient(fe, "/events/t", src="127.0.0.31")
            eq(c2.wait_head().status, 429, "same client again: its own cap")
            c3 = SSEClient(fe, "/events/t", src="127.0.0.32")
            eq(c3.wait_head().status, 200, "another client")
            with b.publisher() as p:
                i = p.pub("t", "through haproxy")
            eq(int(c1.expect_events(1)[0].id), i, "events flow through the v2 proxy")
            for c in (c1, c2, c3):
                c.close()
            eq(b.metric('spout_limit_rejections_total{limit="proxy_header"}'), 0,
               "haproxy's headers (checks included) all parsed")
        finally:
            kill_pid(hp)
            log.close()


@test
def request_head_limits():
    with Broker("--max-request-bytes", "1024", "--max-headers", "8") as b:
        big = b"GET /events/t HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 1100 + b"\r\n\r\n"
        r = b.http(big)
        eq(r.status, 431, "head over --max-request-bytes: %s" % r.describe())
        many = b"GET /events/t HTTP/1.1\r\nHost: x\r\n" + \
            b"".join(b"X-H%d: v\r\n" % i for i in range(8)) + b"\r\n"
        r = b.http(many)
        eq(r.status, 431, "9 header fields over --max-headers 8: %s" % r.describe())
        check(b"too many header fields" in r.body, r.describe())
        ok = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + \
            b"".join(b"X-H%d: v\r\n" % i for i in range(7)) + b"\r\n"
        eq(b.http(ok).status, 200, "8 fields are fine")
        # a head arriving slowly in pieces is held to the same bound
        r = raw_http(b.http_port, None, chunks=[b"GET /events/t HTTP/1.1\r\nX-Pad: ",
                                                b"b" * 600, b"c" * 600], chunk_delay=0.05)
        eq(r.status, 431, "partial head over the bound: %s" % r.describe())
        eq(b.metric('spout_limit_rejections_total{limit="request_head"}'), 3, "counted")


@test(timeout=30)
def publisher_idle_timeout_and_auth_deadline():
    with Broker("--pub-idle-timeout-ms", "600") as b:
        with b.publisher() as quiet, b.publisher() as chatty:
            t0 = time.monotonic()
            for _ in range(6):
                chatty.send_raw(b"PING\n")
                chatty.expect_line("PONG")
                time.sleep(0.2)
            quiet.expect_line("ERR idle timeout", timeout=3)
            quiet.expect_closed()
            check(time.monotonic() - t0 >= 0.6, "not before the timeout")
            chatty.send_raw(b"PING\n")
            chatty.expect_line("PONG")
        eq(b.metric('spout_limit_rejections_total{limit="pub_idle"}'), 1, "counted")
    with Broker("--pub-token", "tok-123", "--header-timeout-ms", "500") as b:
        with b.publisher() as p:
            for _ in range(3):   # traffic (PINGs too) does not extend the AUTH deadline
                p.send_raw(b"PING\nPUB t x\n")
                p.expect_line("PONG")
                check(p.read_line().startswith("ERR auth required"), "PUB before AUTH")
                time.sleep(0.1)
            p.expect_line("ERR auth required: no AUTH in time", timeout=3)
            p.expect_closed()
        with b.publisher() as p:
            p.send_raw(b"AUTH tok-123\n")
            p.expect_line("OK")
            time.sleep(1.0)
            p.send_raw(b"PING\n")
            p.expect_line("PONG")


@test
def publisher_rate_and_connection_caps():
    with Broker("--pub-max-rate", "5", "--pub-max-conns", "2") as b:
        with b.publisher() as p:
            p.send_raw(b"".join(b"PUB t e%d\n" % i for i in range(20)))
            lines = [p.read_line() for _ in range(20)]
            ok = [l for l in lines if l.startswith("OK ")]
            err = [l for l in lines if l.startswith("ERR rate limit")]
            eq(len(ok) + len(err), 20, "every command answered: %r" % lines)
            check(5 <= len(ok) <= 7, "a burst of about one second's worth: %d OK" % len(ok))
            eq(lines[:5], ok[:5], "the burst comes first")
            time.sleep(1.1)
            check(p.pub("t", "after a second") > 0, "the bucket refills")
            eq(b.metric('spout_limit_rejections_total{limit="pub_rate"}'), len(err), "counted")
            with b.publisher() as p2:
                p2.send_raw(b"PING\n")
                p2.expect_line("PONG")
                with b.publisher() as p3:
                    p3.expect_line("ERR too many publisher connections (--pub-max-conns)")
                    p3.expect_closed()
        eq(b.metric('spout_limit_rejections_total{limit="pub_conns"}'), 1, "counted")
