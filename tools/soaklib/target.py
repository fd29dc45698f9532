"""The broker under test: one soak.py starts (harness.Broker with
BROKER_FLAGS, dying with soak.py) or one already running (--http/--pub,
optionally --pid and --log). Target gives both the same face: /metrics,
open fds and RSS (from /proc when the pid is known, else from /metrics),
which sanitizer the build carries, and the first sanitizer report in its
log. Also the small helpers for reading metrics the checks and the summary
share."""
import os
import time

import harness

from .common import die_with_parent

# Broker flags for a broker soak.py starts. --write-timeout-ms 2000 sheds the
# stopped clients quickly; --queue 64 lets the lagging readers (which do make
# write progress) reach the queue bound, so both shed paths run (the bound
# counts only lag beyond the socket buffers, which healthy readers never
# fill); --history-bytes bounds what history may keep (so the
# RSS tolerance in afterload.py has a known term for it); --header-timeout-ms
# 2000 makes the slow-head (408) bad requests short; heartbeats exercise the
# idle path.
BROKER_FLAGS = ["--write-timeout-ms", "2000", "--queue", "64", "--history-bytes", str(4 << 20),
                "--header-timeout-ms", "2000", "--heartbeat-ms", "1000"]

_harness_spawn = harness.spawn


def _spawn_dying_with_us(argv, **kw):
    """harness.Broker starts spoutd through harness.spawn: give it
    PR_SET_PDEATHSIG too, so a SIGKILLed soak.py leaves no broker behind."""
    kw.setdefault("preexec_fn", die_with_parent)
    return _harness_spawn(argv, **kw)


harness.spawn = _spawn_dying_with_us


class Target:
    """The broker under test: one started here (Broker) or an external one.

    metrics() and sanitizer_report() are harness.Broker's own methods: they
    read only host, http_port and log_path, which Target has either way."""

    SANITIZER_MARKS = harness.Broker.SANITIZER_MARKS

    def __init__(self, args):
        self.broker = None
        self.pid = args.pid
        self.log_path = args.log
        if args.http:
            h, _, p = args.http.rpartition(":")
            self.host, self.http_port = h, int(p)
            h2, _, p2 = args.pub.rpartition(":")
            self.pub_host, self.pub_port = h2, int(p2)
            if self.pub_host != self.host:
                raise SystemExit("soak.py: --http and --pub must be on the same host")
        else:
            harness.CURRENT["name"] = "soak"
            self.broker = harness.Broker(*(BROKER_FLAGS + args.spoutd_arg), stop_timeout=30,
                                         start_timeout=30)
            self.broker.__enter__()
            self.host = self.broker.host
            self.http_port, self.pub_port = self.broker.http_port, self.broker.pub_port
            self.pid = self.broker.pid
            self.log_path = self.broker.log_path
        self.sanitized = None

    def metrics(self):
        return harness.Broker.metrics(self, 10)

    def alive(self):
        if self.broker is not None:
            return self.broker.alive()
        if self.pid:
            return os.path.exists("/proc/%d" % self.pid)
        return True

    def rss_kb(self, m=None):
        if self.pid:
            try:
                with open("/proc/%d/status" % self.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            return int(line.split()[1])
            except OSError:
                return None
        m = m or self.metrics()
        return int(m.get("spout_process_resident_bytes", 0) // 1024)

    def nfds(self, m=None):
        if self.pid:
            try:
                return len(os.listdir("/proc/%d/fd" % self.pid))
            except OSError:
                return None
        m = m or self.metrics()
        return int(m.get("spout_open_fds", -1))

    def sanitizer_build(self):
        """'asan', 'tsan' or None, from the libraries the process mapped."""
        if self.sanitized is None:
            self.sanitized = ""
            if self.pid:
                try:
                    with open("/proc/%d/maps" % self.pid) as f:
                        maps = f.read()
                    if "libasan" in maps:
                        self.sanitized = "asan"
                    elif "libtsan" in maps:
                        self.sanitized = "tsan"
                except OSError:
                    pass
        return self.sanitized or None

    def sanitizer_report(self):
        """The first sanitizer line in the broker's log, or None (also when
        an external broker's log is not known)."""
        if not self.log_path:
            return None
        return harness.Broker.sanitizer_report(self)


def stable_fds(tg, tries=40):
    """The fd count once it has not changed for 3 samples 50 ms apart."""
    last, same = None, 0
    for _ in range(tries):
        n = tg.nfds()
        if n == last:
            same += 1
            if same >= 2:
                return n
        else:
            last, same = n, 0
        time.sleep(0.05)
    return last


def mib(kb):
    return "%.1f MiB" % (kb / 1024.0) if kb is not None else "?"


def labelled(m, name):
    """{label value: sample} for the samples of metric <name> in <m>."""
    out = {}
    for k, v in m.items():
        if k.startswith(name + "{"):
            lab = k[len(name) + 1:-1]
            lab = lab.split("=", 1)[1].strip('"') if "=" in lab else lab
            out[lab] = v
    return out


def diff_labelled(m1, m0, name):
    """How each label of counter <name> moved from <m0> to <m1> (non-zero only)."""
    a, b = labelled(m1, name), labelled(m0, name)
    return {k: int(v - b.get(k, 0)) for k, v in sorted(a.items()) if v - b.get(k, 0)}
