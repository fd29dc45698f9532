"""The run itself: Child (one role process, re-executing soak.py with
--role/--config, its result and stderr), and Soak, which takes the broker's
baseline, starts the healthy subscribers and waits for their heads, starts
the rest of the load (publishers, churn, slow and stopped readers, bad
requests, spout-bench), drives the SIGSTOP/SIGCONT/SIGKILL cycle of the
stopped readers while it samples RSS and fds, ends the load with a marker
event on every healthy topic, and then hands over to the final checks
(afterload, verify) and the summary (report). Soak.check() records each
assertion; the exit status is 0 only if all of them held."""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import harness

from . import afterload, report, verify
from .client import quit_publisher
from .common import addrs, die_with_parent, ev_crc, now, read_json, touch, write_json
from .target import Target, stable_fds
from .topology import HEALTHY, MARK, MARKER_TOPICS, SLOW_SLOTS, STOPPED_PATHS

HARD_MARGIN = 180             # s past --duration after which everything stops


class Child:
    """One role process: <script> --role <role> --config <workdir>/<name>.cfg,
    stdout and stderr to <name>.stderr, result in <name>.json (cfg "out")."""

    def __init__(self, name, role, cfg, workdir, script):
        self.name = name
        self.role = role
        self.cfg = dict(cfg)
        self.cfg["out"] = os.path.join(workdir, name + ".json")
        self.cfg_path = os.path.join(workdir, name + ".cfg")
        write_json(self.cfg_path, self.cfg)
        self.err_path = os.path.join(workdir, name + ".stderr")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([sys.executable, script, "--role", role,
                                      "--config", self.cfg_path],
                                     stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=self._err, preexec_fn=die_with_parent)
        self.pid = self.proc.pid
        self.stopped = False
        self.killed = False

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        harness.kill_pid(self.proc)
        self._err.close()

    def result(self):
        return read_json(self.cfg["out"])

    def stderr_tail(self, n=8):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()[-n:]
        except OSError:
            return []

    def stderr_line(self, n=3):
        """The last <n> lines of its stderr on one line, for a check's detail."""
        return " | ".join(self.stderr_tail(n))

    def no_result(self):
        return "%s: no result (status %s) %s" % (self.name, self.proc.returncode,
                                                 self.stderr_line())


class Soak:
    """One soak run against one Target. <script>: the soak.py the role
    processes run."""

    def __init__(self, args, script):
        self.args = args
        self.script = script
        self.checks = []          # (ok, what, detail)
        self.notes = []
        self.children = []
        self.tg = None
        self.workdir = None
        self.t_start = now()
        self.peak_rss = 0
        self.peak_fds = 0
        self.peak_open = 0
        self.stop_stats = {"SIGSTOP": 0, "SIGCONT": 0, "SIGKILL": 0}
        self.seed = args.seed if args.seed is not None else random.randrange(1 << 30)
        random.seed(self.seed)

    def check(self, ok, what, detail=""):
        self.checks.append((bool(ok), what, detail))
        return ok

    # -- children
    def spawn(self, name, role, cfg):
        base = {"host": self.tg.host, "http_port": self.tg.http_port, "pub_port": self.tg.pub_port,
                "t_until": self.t_until, "t_hard": self.t_hard - 10,
                "seed": random.randrange(1 << 30)}
        base.update(cfg)
        c = Child(name, role, base, self.workdir, self.script)
        self.children.append(c)
        return c

    def sample(self):
        r, n = self.tg.rss_kb(), self.tg.nfds()
        if r:
            self.peak_rss = max(self.peak_rss, r)
        if n:
            self.peak_fds = max(self.peak_fds, n)

    def run(self):
        a = self.args
        self.workdir = tempfile.mkdtemp(prefix="soak-", dir=a.workdir)
        self.tg = Target(a)
        tg = self.tg
        slow = 1.0
        if tg.sanitizer_build():
            slow = 3.0
        self.slow = slow
        self.reply_timeout = 30 * slow
        # ---- baseline: right after /readyz, nothing connected
        time.sleep(0.3)
        self.base_fds = stable_fds(tg)
        self.base_rss = tg.rss_kb()
        self.m0 = tg.metrics()
        self.base_fds = stable_fds(tg)
        self.peak_rss, self.peak_fds = self.base_rss or 0, self.base_fds or 0
        self.t_hard = self.t_start + a.duration + HARD_MARGIN
        # healthy subscribers first: publishing starts when all have their heads
        self.t_until = now() + a.duration + 30     # provisional; set below
        healthy_specs = []
        for k, (path, topics, mode, extra) in enumerate(HEALTHY):
            sp = {"path": path, "topics": topics, "mode": mode, "src": "127.0.0.%d" % (2 + k % 8)}
            sp.update(extra)
            healthy_specs.append(sp)
        groups = [healthy_specs[0::2], healthy_specs[1::2]]
        hs = []
        for gi, g in enumerate(groups):
            hs.append(self.spawn("healthy%d" % gi, "healthy", {"conns": g,
                                                                "marker_wait": 15 * slow}))
        self.healthy = hs
        deadline = now() + 30 * slow
        while now() < deadline and not all(os.path.exists(h.cfg["out"] + ".ready") for h in hs):
            if not all(h.alive() for h in hs):
                break
            time.sleep(0.05)
        if not self.check(all(os.path.exists(h.cfg["out"] + ".ready") for h in hs),
                          "healthy subscribers connected before publishing",
                          "; ".join(h.stderr_line(8) for h in hs)):
            return self.finish()
        # Publishing starts now. The healthy processes learn when the load ends
        # (and so when the late joiners join) from <out>.until.
        self.t_pub_start = now()
        self.t_until = self.t_pub_start + a.duration
        for h in hs:
            write_json(h.cfg["out"] + ".until", {"t_pub_start": self.t_pub_start,
                                                 "t_until": self.t_until})
        self.start_load()
        self.monitor()
        self.end_load()
        return self.finish()

    def start_load(self):
        a, slow = self.args, self.slow
        rt = self.reply_timeout
        pubs = [("pubA", "single", 30), ("pubB", "event", 20), ("pubC", "pipeline", 30),
                ("pubH", "heavy", 40)]
        self.pubs = [self.spawn(n, "publisher", {"name": n, "mode": m, "rate": r * a.rate,
                                                 "reply_timeout": rt})
                     for n, m, r in pubs]
        self.churn = self.spawn("churn", "churn", {"rate": 15 * a.rate, "concurrency": 12,
                                                   "srcs": addrs(10, 30)})
        self.slowp = self.spawn("slow", "readers", {"kind": "slow", "slots": SLOW_SLOTS,
                                                    "srcs": addrs(30, 34), "max_opens": 10000})
        self.stopped_seq = 0
        self.stopped_state = []
        for _ in range(3):
            self.stopped_state.append(self.new_stopped())
        self.bad = self.spawn("bad", "bad", {"rate": 4 * a.rate, "srcs": addrs(50, 55)})
        self.bench = None
        bench = a.bench
        if bench and os.access(bench, os.X_OK) and a.duration >= 20:
            d = max(5, a.duration - 15)
            argv = [bench, "--http", "%s:%d" % (self.tg.host, self.tg.http_port),
                    "--pub", "%s:%d" % (self.tg.host, self.tg.pub_port),
                    "-s", "60", "-t", "3", "--topic-prefix", "soakb", "-r", str(60 * a.rate),
                    "--size", "1024", "-d", str(d), "--slow", "6", "--slow-rcvbuf", "4096",
                    "--src-addrs", "127.0.0.40-127.0.0.49", "--procs", "1",
                    "--connect-timeout", str(int(30000 * slow)),
                    "--drain-ms", str(int(5000 * slow)),
                    "--max-seconds", str(int(d + 60 * slow)), "--expect-no-loss", "--json"]
            self.bench_out = open(os.path.join(self.workdir, "bench.json"), "wb")
            self.bench_err = open(os.path.join(self.workdir, "bench.stderr"), "wb")
            self.bench = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.bench_out,
                                          stderr=self.bench_err, preexec_fn=die_with_parent)
            self.bench_argv = argv
        elif bench:
            self.notes.append("spout-bench part skipped (%s not built, or duration < 20 s)"
                              % bench)

    def new_stopped(self):
        self.stopped_seq += 1
        k = self.stopped_seq
        c = self.spawn("stopped%d" % k, "readers", {
            "kind": "stopped", "slots": [(p, 4096, 0, 0) for p in STOPPED_PATHS],
            "srcs": ["127.0.0.%d" % (34 + k % 6)], "max_opens": 1000})
        return {"child": c, "state": "run", "at": now() + random.uniform(3, 6)}

    def step_stopped(self):
        t = now()
        for i, st in enumerate(self.stopped_state):
            c = st["child"]
            if t < st["at"]:
                continue
            if st["state"] == "run":
                if not c.alive():
                    continue
                c.signal(signal.SIGSTOP)
                c.stopped = True
                self.stop_stats["SIGSTOP"] += 1
                st["state"] = "stopped"
                # long enough for its socket buffers to fill at the heavy
                # topic's rate and then for --write-timeout-ms to pass
                st["at"] = t + random.uniform(12, 18)
            else:
                if random.random() < 0.6 or self.stop_stats["SIGKILL"] >= 40:
                    c.signal(signal.SIGCONT)
                    c.stopped = False
                    self.stop_stats["SIGCONT"] += 1
                    st["state"] = "run"
                    st["at"] = t + random.uniform(3, 6)
                else:
                    c.kill()
                    c.killed = True
                    c.stopped = False
                    self.stop_stats["SIGKILL"] += 1
                    if t + 8 < self.t_until:
                        self.stopped_state[i] = self.new_stopped()
                    else:
                        st["state"] = "gone"
                        st["at"] = float("inf")

    def monitor(self):
        last_m = 0
        died_reported = set()
        while now() < self.t_until:
            self.sample()
            self.step_stopped()
            if now() - last_m >= 5:
                last_m = now()
                try:
                    m = self.tg.metrics()
                    self.peak_open = max(self.peak_open, m.get("spout_connections_open", 0))
                except (AssertionError, OSError) as e:
                    self.notes.append("scrape during load failed: %s" % e)
            if not self.tg.alive():
                self.check(False, "spoutd alive during the load", "spoutd exited")
                break
            for c in self.children:
                if not c.alive() and not c.killed and c.name not in died_reported and \
                        c.result() is None:
                    died_reported.add(c.name)
                    self.notes.append("%s exited early (status %s): %s" % (
                        c.name, c.proc.returncode, c.stderr_line()))
            time.sleep(min(0.5, max(0.0, self.t_until - now())))

    def end_load(self):
        slow = self.slow
        for st in self.stopped_state:     # nobody stays stopped
            if st["child"].stopped:
                st["child"].signal(signal.SIGCONT)
                st["child"].stopped = False
                self.stop_stats["SIGCONT"] += 1
        deadline = now() + 40 * slow
        while now() < deadline and any(p.alive() for p in self.pubs):
            self.sample()
            time.sleep(0.1)
        # markers: the last event on every healthy topic
        self.markers = []
        try:
            with harness.Publisher(self.tg.pub_port, host=self.tg.host,
                                   timeout=self.reply_timeout) as p:
                for t in MARKER_TOPICS:
                    ts = now()
                    i = p.pub(t, MARK + t)
                    self.markers.append([i, t, None, ev_crc(None, MARK + t), ts])
                quit_publisher(p)
        except (AssertionError, OSError) as e:
            self.check(False, "end markers published", str(e))
        for h in self.healthy:
            touch(h.cfg["out"] + ".markers")
        others = [c for c in self.children if c not in self.pubs]
        deadline = now() + 60 * slow
        while now() < deadline and any(c.alive() for c in others):
            self.sample()
            time.sleep(0.1)
        if self.bench is not None:
            try:
                self.bench.wait(max(1, min(60 * slow, self.t_hard - now() - 60)))
            except subprocess.TimeoutExpired:
                pass
        for c in self.children:
            if c.alive():
                self.notes.append("%s still running at the end: killed" % c.name)
                c.kill()
        if self.bench is not None and self.bench.poll() is None:
            self.notes.append("spout-bench still running at the end: killed")
            harness.kill_pid(self.bench)

    def kill_all(self):
        """SIGKILL (by PID) whatever this run started that is still running:
        role processes, spout-bench, the broker. Safe at any point."""
        for c in self.children:
            if c.alive():
                c.kill()
        b = getattr(self, "bench", None)
        if b is not None:
            harness.kill_pid(b)
        if self.tg is not None and self.tg.broker is not None and self.tg.broker.alive():
            self.tg.broker.kill()

    # -- the verdict
    def finish(self):
        """Check the broker and what the clients saw, stop a broker started
        here, print the summary. Returns the exit status."""
        alive, final = afterload.check_broker(self)
        results = verify.verify(self) if hasattr(self, "pubs") else {}
        stop = afterload.stop_broker(self, alive)
        ok = all(c[0] for c in self.checks)
        report.print_summary(self, results, final, stop, ok)
        if ok and not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            print("child results and logs kept in %s" % self.workdir)
        return 0 if ok else 1
