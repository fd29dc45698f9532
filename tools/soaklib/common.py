"""Helpers every part of the soak uses: the clock, topic matching (what the
broker must route where), the CRC that identifies an event's type and data,
and process and file helpers (a child dies with soak.py, a role arms its own
deadline, results are written atomically as JSON)."""
import ctypes
import json
import os
import random
import resource
import signal
import time
import zlib


def now():
    return time.monotonic()


def topic_matches(pat, topic):
    """Does subscription pattern <pat> (segments, '*' one, '>' one or more
    trailing) match the concrete <topic>?"""
    ps, ts = pat.split("."), topic.split(".")
    for i, p in enumerate(ps):
        if p == ">":
            return i == len(ps) - 1 and len(ts) > i
        if i >= len(ts):
            return False
        if p != "*" and p != ts[i]:
            return False
    return len(ts) == len(ps)


def matches_any(pats, topic):
    return any(topic_matches(p, topic) for p in pats)


def visible(payload):
    """What an SSE client gets as data for a payload: line breaks normalised."""
    return payload.replace("\r\n", "\n").replace("\r", "\n")


def ev_crc(etype, data):
    """The fingerprint of an event's type (None: untyped) and data, as both
    the publisher and the subscriber side compute it."""
    return zlib.crc32(((etype or "") + "\0" + data).encode("utf-8", "replace"))


def addrs(first, last):
    """Loopback source addresses 127.0.0.<first> .. 127.0.0.<last - 1>."""
    return ["127.0.0.%d" % k for k in range(first, last)]


# ------------------------------------------------------------------ processes

def die_with_parent():
    """preexec_fn: SIGKILL this child when soak.py dies (PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def child_setup(cfg):
    """Common start of a role: its own hard deadline (default SIGALRM action
    ends the process), seeded randomness."""
    raise_nofile()
    left = cfg["t_hard"] - now()
    signal.alarm(max(1, int(left) + 1))
    random.seed(cfg["seed"])


def pace(next_t, t_until):
    """Sleep until <next_t>, but not past <t_until> (rate-paced loops)."""
    t = now()
    if next_t > t:
        time.sleep(min(next_t - t, max(0.0, t_until - t)))


# ------------------------------------------------------------------ files

def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    os.replace(tmp, path)


def read_json(path):
    """The JSON in <path>, or None if it is missing or not (yet) valid."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def touch(path):
    """Create an empty flag file (how the orchestrator and the healthy
    role tell each other that a phase has begun)."""
    open(path, "w").close()
