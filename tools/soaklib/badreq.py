"""Role "bad": malformed requests, each of which must get a known answer
(role_bad says how they are sent), and the tables of bad cases with those
answers: BAD_COMMANDS and BIG_BAD_COMMANDS for the publisher port (the
pipelining publisher mixes them into its batches too), BAD_HTTP and
SLOW_HEAD for the HTTP port (docs/protocol.md, test_bad_input.py). Result:
answers by kind, mismatches [case, wanted, got], errors, cases sent.
"""
import random

import harness

from .client import open_raw, quit_publisher
from .common import child_setup, now, pace, write_json

# Bad commands and the replies they must get (protocol.md 1.3): each is
# consumed completely, so the connection stays in step.
BAD_COMMANDS = [
    (b"pub soak.t0 lower\n", ["ERR unknown command"]),
    (b"\n", ["ERR empty line"]),
    (b"PING x\n", ["ERR unexpected argument"]),
    (b"QUIT now\n", ["ERR unexpected argument"]),
    (b"PUB\n", ["ERR missing topic"]),
    (b"PUB soak..t0 x\n", ["ERR empty topic segment"]),
    (b"PUB soak/t0 x\n", ["ERR invalid character in topic"]),
    (b"PUB soak.* x\n", ["ERR invalid character in topic"]),
    (b"PUB " + b"a" * 129 + b" x\n", ["ERR topic too long"]),
    (b"PUB soak.t0 nul\x00byte\n", ["ERR NUL byte in line"]),
    (b"EVENT soak.t0 bad\x7ftype 3\nabc\n", ["ERR invalid event type"]),
    (b"EVENT soak.t0 t 5a\n", ["ERR invalid payload length"]),
    (b"EVENT soak.t0 t\n", ["ERR missing payload length"]),
    (b"EVENT soak.a..b t 3\nPUB\n", ["ERR empty topic segment"]),
    (b"AUTH sesame\n", ["ERR auth not enabled"]),
    (b"PING\n", ["PONG"]),
]
BIG_BAD_COMMANDS = [
    (b"PUB soak.t0 " + b"L" * 70000 + b"\n", ["ERR line too long"]),
    (b"EVENT soak.t0 big 70000\n" + b"P" * 70000 + b"\n", ["ERR payload too large"]),
]


def _big_head():
    pad = "".join("X-Pad-%03d: %s\r\n" % (k, "v" * 100) for k in range(85))
    return ("GET /events/soak.t0 HTTP/1.1\r\nHost: x\r\n" + pad + "\r\n").encode()


# (name, request bytes, expected HTTP status) - docs/protocol.md, test_bad_input.py
BAD_HTTP = [
    ("garbage", b"\x00\x01\xfe\xff garbage\r\n\r\n", 400),
    ("words", b"hello there\r\n\r\n", 400),
    ("lowercase method", b"get /events/soak.t0 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("no host", b"GET /events/soak.t0 HTTP/1.1\r\n\r\n", 400),
    ("header without colon", b"GET /events/soak.t0 HTTP/1.1\r\nHost x\r\n\r\n", 400),
    ("empty segment", b"GET /events/soak..t0 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("space in topic", b"GET /events/soak%20t0 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad percent", b"GET /events/soak.%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("topic too long", ("GET /events/%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("a" * 129)).encode(), 400),
    ("bad pattern", b"GET /events/soak.t* HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad pattern 2", b"GET /events/soak.%3E.x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("no topic", b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("too many topics", ("GET /events?%s HTTP/1.1\r\nHost: x\r\n\r\n"
                         % "&".join("topic=soak.t%d" % k for k in range(17))).encode(), 400),
    ("unknown path", b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ("post", b"POST /events/soak.t0 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
    ("target too long", ("GET /events/%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("a" * 4200)).encode(),
     414),
    ("oversized head", _big_head(), 431),
    ("http/2", b"GET /events/soak.t0 HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
]
SLOW_HEAD = ("slow head", b"GET /events/soak.t0 HTTP/1.1\r\nHost: x\r\n", 408)


def role_bad(cfg):
    """Bad requests at a steady rate, cycling through every case in a
    shuffled order, so each is covered evenly: HTTP cases, a head that never
    completes (408), a head cut off by the client (no answer), bad publisher
    commands on a long-lived publisher connection (replaced now and then)."""
    child_setup(cfg)
    answers = {}
    mismatches = []
    errors = []
    rate = cfg["rate"]
    n = 0
    max_n = int(rate * (cfg["t_until"] - now()) * 1.2) + 10
    next_t = now()
    pub = None
    srcs = cfg["srcs"]
    cases = [("http",) + c for c in BAD_HTTP] + [("http",) + SLOW_HEAD, ("cut",)] + \
        [("line", c, w) for c, w in BAD_COMMANDS[:-1]] + \
        [("line", c, w) for c, w in BIG_BAD_COMMANDS]
    order = []
    while now() < cfg["t_until"] and n < max_n:
        pace(next_t, cfg["t_until"])
        next_t = max(next_t + 1.0 / rate, now() - 1.0)
        n += 1
        if not order:
            order = list(cases)
            random.shuffle(order)
        case = order.pop()
        try:
            if case[0] == "http":
                _, name, req, want = case
                res = harness.raw_http(cfg["http_port"], req, 10, host=cfg["host"],
                                       src=srcs[n % len(srcs)])
                got = "HTTP %s" % res.status if res.status is not None else res.how
                key = "HTTP %d" % want
            elif case[0] == "cut":
                # half a request, then gone: nothing to answer; must not leak
                s = open_raw(cfg, srcs[n % len(srcs)])
                s.sendall(b"GET /events/soak.t0 HTTP/1.1\r\nHost: x\r\nX-Junk: \xff\xfe")
                s.close()
                key = "(no answer: head cut by the client)"
                answers[key] = answers.get(key, 0) + 1
                continue
            else:
                _, cmd, want = case
                if pub is None:
                    pub = harness.Publisher(cfg["pub_port"], host=cfg["host"], timeout=20)
                pub.send_raw(cmd, timeout=20)
                name = "line %r" % cmd[:24]
                got = pub.read_line(20)
                key = want[0]
                if random.random() < 0.05:
                    quit_publisher(pub, 20)
                    pub.close()
                    pub = None
            answers[key] = answers.get(key, 0) + 1
            if got != key:
                mismatches.append([name, key, got])
        except (AssertionError, OSError) as e:
            errors.append("%s: %s" % (type(e).__name__, e))
            if pub is not None:
                pub.close()
                pub = None
            if len(errors) > 20:
                break
    if pub is not None:
        pub.close()
    write_json(cfg["out"], {"answers": answers, "mismatches": mismatches, "errors": errors,
                            "sent": n})
