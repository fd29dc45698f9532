"""noderun.py - run the Node scripts of test/clients/ (es_client.mjs,
browser.mjs, dashboard.mjs, ...) from the integration tests: each prints
one JSON line per thing that happens and bounds its own run time; NodeRun
bounds it again and kills only what it started (its session), by PID."""
import json
import os
import shutil
import signal
import subprocess
import threading
import time

from harness import ARTIFACTS, CURRENT, ROOT, check, kill_pid, spawn

CLIENTS = os.path.join(ROOT, "test", "clients")
CHROMIUM = "/usr/bin/chromium"


def require(browser=False):
    """The clients must be installed: a missing one is a failure (with the
    fix), not a skip, so a machine without them cannot pass silently."""
    hint = " (run tools/deps.sh test)"
    check(shutil.which("node"), "node is not on PATH" + hint)
    mods = ["eventsource", "playwright-core"] if browser else ["eventsource"]
    for m in mods:
        check(os.path.isfile(os.path.join(CLIENTS, "node_modules", m, "package.json")),
              "test/clients/node_modules/%s is missing%s" % (m, hint))
    if browser:
        check(os.access(CHROMIUM, os.X_OK), "%s is missing%s" % (CHROMIUM, hint))


def _session_members(sid):
    """PIDs of the processes in session <sid> (our node script and anything
    it started: Chromium and its helpers)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        # state ppid pgrp session ...
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] != b"Z":
            pids.append(int(d))
    return pids


class NodeRun:
    """Run one of the test/clients scripts in its own session; collect its
    JSON lines (stdout) as they come; keep its stderr in test/artifacts/."""

    def __init__(self, script, args, name=None):
        os.makedirs(ARTIFACTS, exist_ok=True)
        label = name or os.path.splitext(script)[0]
        self.err_path = os.path.join(ARTIFACTS, "%s-%s-%d.stderr.log" % (
            CURRENT["name"] or "clients", label, os.getpid()))
        self._err = open(self.err_path, "wb")
        self.argv = ["node", os.path.join(CLIENTS, script)] + [str(a) for a in args]
        self.proc = spawn(self.argv, cwd=CLIENTS, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=self._err, start_new_session=True)
        self.lines = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            raw = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = {"kind": "raw", "text": raw}
            with self._lock:
                self.lines.append(obj)

    def snapshot(self):
        with self._lock:
            return list(self.lines)

    def kinds(self, kind):
        return [l for l in self.snapshot() if l.get("kind") == kind]

    def describe(self):
        lines = self.snapshot()
        try:
            with open(self.err_path, "rb") as f:
                err = f.read().decode("utf-8", "replace")[-1500:]
        except OSError:
            err = ""
        return "%s\n  stdout: %s\n  stderr (%s): %s" % (
            " ".join(self.argv[1:]), "\n    ".join(json.dumps(l) for l in lines[-40:]),
            os.path.relpath(self.err_path, ROOT), err.strip())

    def wait(self, pred, timeout, what):
        """Wait (bounded) until pred(lines) is true; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            v = pred(self.snapshot())
            if v:
                return v
            if self.proc.poll() is not None:
                self._reader.join(2)
                v = pred(self.snapshot())
                if v:
                    return v
                raise AssertionError("%s exited %s before %s:\n%s" % (
                    os.path.basename(self.argv[1]), self.proc.returncode, what, self.describe()))
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %.1fs waiting for %s:\n%s"
                                     % (timeout, what, self.describe()))
            time.sleep(0.02)

    def wait_kind(self, kind, n=1, timeout=10.0):
        return self.wait(lambda ls: [l for l in ls if l.get("kind") == kind][n - 1:n],
                         timeout, "%d '%s' line(s)" % (n, kind))[0]

    def finish(self, timeout=10.0):
        """Wait for the script to exit by itself (bounded); then make sure
        nothing it started (Chromium) outlives it. Returns (rc, done line)."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError("%s still running after %.1fs; stopped:\n%s" % (
                os.path.basename(self.argv[1]), timeout, self.describe()))
        self._reader.join(5)
        self._err.close()
        self._reap_session()
        done = self.kinds("done")
        return rc, (done[-1] if done else None)

    def stop(self):
        """SIGTERM (the scripts close Chromium on it), then SIGKILL by PID."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=6)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        kill_pid(self.proc)
        self._reap_session()
        try:
            self._err.close()
        except Exception:
            pass

    def _reap_session(self):
        sid = self.proc.pid
        deadline = time.monotonic() + 3.0
        left = _session_members(sid)
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = _session_members(sid)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        check(not left, "processes of %s outlived it (killed): %r"
              % (os.path.basename(self.argv[1]), left))

    def __enter__(self):
        return self

    def __exit__(self, *a):
        if self.proc.poll() is None or not self._err.closed:
            self.stop()
        return False
