"""The command-line clients (issue 8): spout-pub and spout-sub against the
real broker, and against a scripted HTTP server where the broker cannot
produce the case (odd chunking, CR line ends, a BOM, retry:); their --help,
the man pages (rendered by man-db with warnings on) and `make install`.

Tool binaries: $SPOUT_PUB_BIN / $SPOUT_SUB_BIN, else next to the broker
($SPOUTD, so SPOUTD=build/asan/spoutd tests the ASan-built tools too). Every
tool run is checked for sanitizer reports. Waits are bounded; only
processes started here are signalled, by PID.
"""
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import harness
from harness import Broker, check, eq, free_port, kill_pid, spawn, test, wait_for
import jwtmint

SECRET = "cli-test-secret-0123456789abcdefghijkl"
ID_RE = re.compile(r"^[0-9]+$")


# ---------------------------------------------------------------- helpers

def tool_path(name, var):
    p = os.environ.get(var)
    if not p:
        return os.path.join(os.path.dirname(harness.spoutd_path()), name)
    if not os.path.isabs(p) and not os.path.exists(p):
        p = os.path.join(harness.ROOT, p)
    return os.path.abspath(p)


def pub_bin():
    return tool_path("spout-pub", "SPOUT_PUB_BIN")


def sub_bin():
    return tool_path("spout-sub", "SPOUT_SUB_BIN")


def tool_env(extra=None):
    """The test's environment without SPOUT_* (a developer's SPOUT_PUB or
    token must not leak into a tool), plus <extra>."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOUT_")}
    env.pop("NO_COLOR", None)
    env.update(extra or {})
    return env


def no_sanitizer_report(err, what):
    for mark in Broker.SANITIZER_MARKS:
        i = err.find(mark)
        check(i == -1, "%s: sanitizer report: %s" % (what, err[i:i + 400]))


def run_tool(argv, input=None, timeout=20, env=None):
    """Run a tool to completion (bounded). Returns (rc, stdout, stderr, secs)."""
    if isinstance(input, str):
        input = input.encode()
    t0 = time.monotonic()
    p = spawn(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tool_env(env))
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_pid(p)
        p.communicate()
        raise AssertionError("%s still running after %ds" % (" ".join(argv[:4]), timeout))
    dt = time.monotonic() - t0
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    no_sanitizer_report(err, os.path.basename(argv[0]))
    return p.returncode, out, err, dt


def pub(b, *args, **kw):
    return run_tool([pub_bin(), "--host", "127.0.0.1:%d" % b.pub_port] + list(args), **kw)


def summary_of(err):
    """(sent, ok, failed, refused, invalid) from spout-pub's summary line."""
    m = re.search(r"sent (\d+), ok (\d+), failed (\d+) \(refused (\d+), invalid (\d+)\)", err)
    check(m is not None, "no summary in stderr: %r" % err[-500:])
    return tuple(int(x) for x in m.groups())


class Bg:
    """A tool running in the background; threads collect its output."""

    def __init__(self, argv, env=None, stdin=subprocess.DEVNULL):
        self.argv = argv
        self.p = spawn(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=tool_env(env))
        self._out, self._err = bytearray(), bytearray()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._pump, args=(f, buf), daemon=True)
                         for f, buf in ((self.p.stdout, self._out), (self.p.stderr, self._err))]
        for t in self._threads:
            t.start()

    def _pump(self, f, buf):
        while True:
            chunk = f.read1(65536) if hasattr(f, "read1") else f.read(4096)
            if not chunk:
                return
            with self._lock:
                buf.extend(chunk)

    def out(self):
        with self._lock:
            return self._out.decode("utf-8", "replace")

    def err(self):
        with self._lock:
            return self._err.decode("utf-8", "replace")

    def json_lines(self):
        return [json.loads(l) for l in self.out().splitlines() if l.strip()]

    def wait_err(self, text, timeout=10):
        wait_for(lambda: text in self.err() or self.p.poll() is not None, timeout,
                 what="%r on %s's stderr" % (text, os.path.basename(self.argv[0])))
        check(text in self.err(), "%s exited (%r) before saying %r; stderr: %r"
              % (os.path.basename(self.argv[0]), self.p.poll(), text, self.err()[-600:]))

    def wait_lines(self, n, timeout=10):
        wait_for(lambda: len(self.json_lines()) >= n or self.p.poll() is not None, timeout,
                 what="%d lines from %s" % (n, os.path.basename(self.argv[0])))
        lines = self.json_lines()
        check(len(lines) >= n, "%d/%d lines (exit %r); stderr: %r"
              % (len(lines), n, self.p.poll(), self.err()[-600:]))
        return lines

    def finish(self, timeout=10):
        """Wait for the exit (bounded); returns the status."""
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_pid(self.p)
            raise AssertionError("%s did not exit within %ds; stderr: %r"
                                 % (os.path.basename(self.argv[0]), timeout, self.err()[-600:]))
        for t in self._threads:
            t.join(5)
        no_sanitizer_report(self.err(), os.path.basename(self.argv[0]))
        return rc

    def stop(self):
        """SIGTERM (ours, by PID), then the exit status."""
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGTERM)
        return self.finish()


def sub_bg(b, *args, env=None):
    """spout-sub on broker <b>, verbose so the test can wait for 'connected'."""
    return Bg([sub_bin(), "--host", "127.0.0.1:%d" % b.http_port, "-v"] + list(args), env=env)


def connected(s, n=1, timeout=10):
    """Wait until <s> has said 'connected' <n> times: the 200 head is sent
    only once the subscription is live, so a publish after this reaches it."""
    wait_for(lambda: s.err().count("connected (HTTP") >= n or s.p.poll() is not None, timeout,
             what="spout-sub connection #%d" % n)
    check(s.err().count("connected (HTTP") >= n,
          "spout-sub exited %r before connecting; stderr: %r" % (s.p.poll(), s.err()[-600:]))


class FakeHTTP:
    """A scripted HTTP server on a free loopback port: for each handler in
    turn, accept one connection, read its request head, call
    handler(conn), close. Records the request heads and accept times."""

    def __init__(self, handlers):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(15)
        self.port = self.sock.getsockname()[1]
        self.requests, self.times, self.errors = [], [], []
        self.thread = threading.Thread(target=self._run, args=(handlers,), daemon=True)
        self.thread.start()

    def _run(self, handlers):
        for h in handlers:
            try:
                conn, _ = self.sock.accept()
            except OSError as e:
                self.errors.append("accept: %s" % e)
                return
            self.times.append(time.monotonic())
            conn.settimeout(10)
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                self.requests.append(head.decode("latin-1"))
                h(conn)
            except OSError as e:
                self.errors.append(str(e))
            finally:
                conn.close()

    def close(self):
        self.sock.close()
        self.thread.join(5)


def chunked(*pieces):
    """HTTP/1.1 200 event-stream head, then each piece as one chunk."""
    out = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n")
    for p in pieces:
        out += b"%x\r\n%s\r\n" % (len(p), p)
    return out


def send_slowly(conn, data, sizes=(1, 2, 3, 5, 7, 11)):
    """Send <data> in small writes of varying sizes, so every framing
    boundary (chunk size line, CRLF, SSE line end) lands split somewhere."""
    i, k = 0, 0
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while i < len(data):
        n = sizes[k % len(sizes)]
        conn.sendall(data[i:i + n])
        i += n
        k += 1
        if k % 7 == 0:
            time.sleep(0.002)


# ---------------------------------------------------------------- --help, man, install

LONG_OPT = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")


def man_text(page):
    p = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, timeout=30,
                       env=dict(tool_env(), MANWIDTH="100"))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


@test
def cli_help_lists_every_option_in_its_man_page():
    for name, path in (("spout-pub", pub_bin()), ("spout-sub", sub_bin())):
        rc, out, err, _ = run_tool([path, "--help"])
        eq(rc, 0, "%s --help exit status" % name)
        check(out.startswith("usage: %s" % name), "%s --help: %r" % (name, out[:80]))
        rc, ver, _, _ = run_tool([path, "--version"])
        eq(rc, 0, "%s --version" % name)
        check(re.match(r"^%s \(spout [0-9]+\.[0-9]+\.[0-9]+\)$" % name, ver.strip()),
              "%s --version: %r" % (name, ver))
        src = os.path.join(harness.ROOT, "docs", "man", name + ".1")
        rc, page, merr = man_text(src)
        eq(rc, 0, "man %s.1: %s" % (name, merr))
        in_help = set(LONG_OPT.findall(out))
        in_page = set(LONG_OPT.findall(page))
        check(len(in_help) >= 10, "%s --help lists only %r" % (name, in_help))
        check(not in_help - in_page, "%s.1 lacks %s" % (name, sorted(in_help - in_page)))
        # Every option the page's OPTIONS section describes (its .TP tags)
        # must exist; the broker's flags mentioned in prose are not this
        # tool's.
        with open(src) as f:
            roff = f.read()
        section = roff.split("\n.SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
        tags = re.findall(r"^\.TP\n(.*)$", section, re.M)
        own = set(re.findall(r"--[a-z][a-z0-9-]+", " ".join(tags).replace("\\-", "-")))
        check(len(own) >= 10 and own == in_help,
              "%s.1 OPTIONS %s, --help %s" % (name, sorted(own ^ in_help), len(in_help)))
        rc, _, err, _ = run_tool([path, "--no-such-option"])
        eq(rc, 2, "%s: unknown option exit status" % name)
        check("--no-such-option" in err, "%s: unknown option message %r" % (name, err))
    # spoutd: --help works, and its page is what tools/man-spoutd.py makes
    # from it now (every option, its variable and default).
    rc, out, _, _ = run_tool([harness.spoutd_path(), "--help"])
    eq(rc, 0, "spoutd --help")
    p = subprocess.run(["python3", os.path.join(harness.ROOT, "tools", "man-spoutd.py"),
                        "--check", harness.spoutd_path()], capture_output=True, timeout=60)
    eq(p.returncode, 0, "docs/man/spoutd.1 matches spoutd --help (%s)"
       % p.stderr.decode().strip())
    rc, page, merr = man_text(os.path.join(harness.ROOT, "docs", "man", "spoutd.1"))
    eq(rc, 0, "man spoutd.1: %s" % merr)
    flat = " ".join(page.split())
    flags = re.findall(r"^  (--[a-z0-9-]+)", out, re.M)
    envs = re.findall(r"\(env (SPOUT_[A-Z0-9_]+), default \"", out)
    check(len(flags) > 40 and len(envs) == len(flags) - 2, "spoutd --help: %d flags, %d envs"
          % (len(flags), len(envs)))
    for f in flags:
        check(f in flat, "spoutd.1 lacks %s" % f)
    for e in envs:
        check("Environment: %s." % e in flat, "spoutd.1 lacks the variable %s" % e)
    check("Default: 127.0.0.1:7400." in flat and "Default: 512." in flat,
          "spoutd.1 shows defaults")


@test
def cli_man_pages_render_without_warnings():
    check(shutil.which("man") is not None, "man is missing: install man-db (tools/deps.sh test)")
    for name in ("spoutd", "spout-pub", "spout-sub"):
        path = os.path.join(harness.ROOT, "docs", "man", name + ".1")
        rc, text, err = man_text(path)
        eq((rc, err.strip()), (0, ""), "man --warnings -l %s" % path)
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "SEE ALSO"):
            check(re.search(r"^%s$" % section, text, re.M), "%s.1 has no %s section"
                  % (name, section))
        check(name.upper() + "(1)" in text, "%s.1 header" % name)
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path], capture_output=True,
                           timeout=30)
        eq((p.returncode, p.stderr.decode().strip()), (0, ""), "groff -ww %s" % path)


@test(timeout=300)
def cli_make_install_puts_programs_and_pages_in_place():
    dest = tempfile.mkdtemp(prefix="spout-install-")
    try:
        # A clean environment: no MAKEFLAGS from a make that runs the
        # tests, no BUILD/PREFIX of the developer's.
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        p = subprocess.run(["make", "--no-print-directory", "install", "DESTDIR=" + dest,
                            "PREFIX=/opt/spout"], cwd=harness.ROOT, capture_output=True,
                           timeout=280, env=env)
        eq(p.returncode, 0, "make install: %s" % p.stderr.decode()[-800:])
        root = os.path.join(dest, "opt", "spout")
        want = {"bin/spoutd": 0o755, "bin/spout-pub": 0o755, "bin/spout-sub": 0o755,
                "share/man/man1/spoutd.1": 0o644, "share/man/man1/spout-pub.1": 0o644,
                "share/man/man1/spout-sub.1": 0o644}
        got = {}
        for d, _, files in os.walk(root):
            for f in files:
                full = os.path.join(d, f)
                got[os.path.relpath(full, root)] = stat.S_IMODE(os.stat(full).st_mode)
        eq(got, want, "installed files and modes")
        for f in ("spoutd.1", "spout-pub.1", "spout-sub.1"):
            with open(os.path.join(root, "share/man/man1", f), "rb") as a, \
                    open(os.path.join(harness.ROOT, "docs/man", f), "rb") as b:
                check(a.read() == b.read(), "installed %s is docs/man/%s" % (f, f))
        for tool in ("spout-pub", "spout-sub"):
            rc, out, _, _ = run_tool([os.path.join(root, "bin", tool), "--version"])
            check(rc == 0 and tool in out, "installed %s --version: %r" % (tool, out))
        # man finds the pages through the installed tree
        p = subprocess.run(["man", "-M", os.path.join(root, "share/man"), "spout-sub"],
                           capture_output=True, timeout=30,
                           env=dict(tool_env(), MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
        check(p.returncode == 0 and b"subscribe to a spout broker" in p.stdout,
              "man -M <dest> spout-sub: %r" % p.stderr[-300:])
        p = subprocess.run(["make", "--no-print-directory", "uninstall", "DESTDIR=" + dest,
                            "PREFIX=/opt/spout"], cwd=harness.ROOT, capture_output=True,
                           timeout=60, env=env)
        eq(p.returncode, 0, "make uninstall: %s" % p.stderr.decode()[-400:])
        left = [f for _, _, fs in os.walk(root) for f in fs]
        eq(left, [], "files left after make uninstall")
    finally:
        shutil.rmtree(dest, ignore_errors=True)


# ---------------------------------------------------------------- spout-pub

@test
def cli_pub_single_event_prints_the_id_subscribers_see():
    with Broker() as b:
        s = sub_bg(b, "--count", "1", "--timeout", "10", "orders.created")
        c = b.sse("/events/orders.created")
        c.wait_head()
        connected(s)
        rc, out, err, _ = pub(b, "orders.created", '{"id":1}')
        eq(rc, 0, "spout-pub exit status (stderr %r)" % err)
        check(ID_RE.match(out.strip()), "spout-pub printed %r, want an id" % out)
        eq(err, "", "spout-pub stderr")
        ev = c.expect_events(1)[0]
        eq((ev.id, ev.event, ev.data), (out.strip(), None, '{"id":1}'), "raw SSE client")
        eq(s.finish(), 0, "spout-sub --count 1 exit status")
        eq(s.json_lines(), [{"id": out.strip(), "topic": "orders.created", "event": "message",
                             "data": '{"id":1}'}], "spout-sub JSON line")
        # -t TOPIC DATA, a type and data with line breaks: sent as EVENT
        rc, out2, err, _ = pub(b, "-t", "orders.created", "--event", "alert", "one\ntwo\n")
        eq(rc, 0, "typed multi-line event: %r" % err)
        ev = c.expect_events(1)[0]
        eq((ev.id, ev.event, ev.data), (out2.strip(), "alert", "one\ntwo\n"), "EVENT delivered")
        check(int(out2) > int(out), "ids grow")
        c.close()


@test
def cli_pub_single_event_errors_exit_nonzero_with_the_reason():
    with Broker() as b:
        for args, reason in ((["a..b", "x"], "empty topic segment"),
                             (["orders.*", "x"], "invalid character in topic"),
                             (["t" * 129, "x"], "topic too long")):
            rc, out, err, _ = pub(b, *args)
            eq(rc, 1, "%s: exit status" % args[0][:20])
            eq(out, "", "%s: nothing on stdout" % args[0][:20])
            check(reason in err, "%s: stderr %r, want %r" % (args[0][:20], err, reason))
        # a topic that would break the framing never leaves the tool
        rc, out, err, _ = pub(b, "has space", "x")
        check(rc == 1 and "invalid character in topic" in err and "not sent" in err,
              "topic with a space: %d %r" % (rc, err))
        rc, _, err, _ = pub(b, "-e", "two words", "t", "x")
        check(rc == 1 and "invalid event type" in err, "type with a space: %d %r" % (rc, err))
        eq(b.metrics()["spout_events_published_total"], 0, "nothing published")
        rc, _, err, _ = pub(b, "only-a-topic")
        check(rc == 2 and "missing DATA" in err, "one argument: %d %r" % (rc, err))
    # nobody listening on the port
    port = free_port()
    rc, _, err, _ = run_tool([pub_bin(), "--host", "127.0.0.1:%d" % port, "t", "x"])
    eq(rc, 3, "connection refused exit status")
    check("cannot connect" in err and str(port) in err and "Connection refused" in err,
          "connect error message: %r" % err)


@test
def cli_pub_jsonl_from_stdin_every_line_acknowledged():
    values = ["plain text", {"id": 7, "items": [1, 2], "name": "é ✓"}, [1, "two", None], 42,
              3.5, True, None, "multi\nline", "", " leading and trailing ", "tab\there"]
    lines, want = [], []
    for i in range(60):
        v = values[i % len(values)]
        topic = "jl.a" if i % 2 == 0 else "jl.b"
        rec = {"topic": topic, "data": v, "ignored": {"x": i}}
        etype = None
        if i % 5 == 0:
            etype = "kind%d" % (i % 3)
            rec["event"] = etype
        lines.append(json.dumps(rec, ensure_ascii=(i % 3 == 0)))
        want.append((etype, v if isinstance(v, str) else json.dumps(v, separators=(",", ":"),
                                                                    ensure_ascii=False)))
        if i % 17 == 0:
            lines.append("")            # blank lines are skipped
    with Broker() as b:
        c = b.sse("/events?topic=jl.a&topic=jl.b")
        c.wait_head()
        rc, out, err, _ = pub(b, "--ids", input="\n".join(lines) + "\n")
        eq(rc, 0, "exit status (stderr %r)" % err[-400:])
        eq(summary_of(err), (60, 60, 0, 0, 0), "summary")
        ids = out.split()
        eq(len(ids), 60, "--ids printed one id per event")
        evs = c.expect_events(60, 10)
        eq([(e.event, e.data) for e in evs], want, "types and data, in order")
        eq([e.id for e in evs], ids, "--ids are the ids subscribers see, in input order")
        check("\r" not in err and "ETA" not in err, "no progress drawing when stderr is a pipe")
        c.close()


@test
def cli_pub_plain_lines_from_a_file_and_stdin():
    with Broker() as b, tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lines.txt")
        data = ["line %d %s" % (i, "x" * (i % 50)) for i in range(200)]
        data[5] = "  spaces kept  "
        data[6] = "PUB evil injected"     # just data, never a command
        data[7] = "x" * 6000               # long: sent as EVENT
        with open(path, "wb") as f:
            for i, d in enumerate(data):
                f.write(d.encode() + (b"\r\n" if i % 3 == 0 else b"\n"))
            f.write(b"last line without a line break")
        data.append("last line without a line break")
        c = b.sse("/events/plain")
        c.wait_head()
        rc, out, err, _ = pub(b, "-f", path, "--topic", "plain")
        eq(rc, 0, "-f FILE exit status (stderr %r)" % err[-300:])
        eq(out, "", "stdout without --ids")
        eq(summary_of(err), (201, 201, 0, 0, 0), "summary")
        eq([e.data for e in c.expect_events(201, 10)], data, "every line, CR LF stripped")
        # "-" is stdin; --window 1 waits for each reply in turn
        rc, out, err, _ = pub(b, "-f", "-", "-t", "plain", "-w", "1", "--ids",
                              input="one\ntwo\n\nthree\n")
        eq(rc, 0, "-f - exit status (%r)" % err)
        eq(summary_of(err), (3, 3, 0, 0, 0), "summary, blank line skipped")
        evs = c.expect_events(3)
        eq([(e.id, e.data) for e in evs], list(zip(out.split(), ["one", "two", "three"])),
           "stdin lines and their ids")
        rc, _, err, _ = pub(b, "-f", os.path.join(tmp, "missing.txt"), "-t", "plain")
        check(rc == 2 and "missing.txt" in err, "missing file: %d %r" % (rc, err))
        c.close()


@test
def cli_pub_stream_reports_each_failed_line_and_goes_on():
    lines = [
        '{"topic": "ok.a", "data": "first"}',
        '{"topic": "a..b", "data": "bad topic"}',
        'not json at all',
        '{"topic": "ok.a", "data": "second"}',
        '{"topic": "ok.a"}',
        '{"topic": "has space", "data": "x"}',
        '{"topic": "ok.*", "data": "wildcard"}',
        '{"topic": "ok.a", "data": "third", "event": "e"}',
    ]
    with Broker() as b:
        c = b.sse("/events/ok.a")
        c.wait_head()
        rc, _, err, _ = pub(b, input="\n".join(lines) + "\n")
        eq(rc, 1, "exit status with failed lines")
        eq(summary_of(err), (5, 3, 5, 2, 3), "summary: sent, ok, failed, refused, invalid")
        reported = re.findall(r"^spout-pub: line (\d+): (.*)$", err, re.M)
        eq([int(n) for n, _ in reported], [2, 3, 5, 6, 7], "failed lines, in line order")
        reasons = dict((int(n), r) for n, r in reported)
        check("empty topic segment" in reasons[2], "line 2: %r" % reasons[2])
        check("invalid JSON" in reasons[3] and "not sent" in reasons[3], "line 3: %r" % reasons[3])
        check('missing "data"' in reasons[5], "line 5: %r" % reasons[5])
        check("invalid character in topic" in reasons[6] and "not sent" in reasons[6],
              "line 6: %r" % reasons[6])
        check("invalid character in topic" in reasons[7] and "not sent" not in reasons[7],
              "line 7 is the broker's answer: %r" % reasons[7])
        eq([e.data for e in c.expect_events(3)], ["first", "second", "third"], "good lines")

        # --stop-on-error: an invalid line stops before anything after it
        # is sent; a refused one with --window 1 stops exactly there too
        rc, _, err, _ = pub(b, "--stop-on-error", input="\n".join(
            ['{"topic":"ok.a","data":"s1"}', "{broken", '{"topic":"ok.a","data":"never"}']))
        eq(rc, 1, "--stop-on-error exit status")
        eq(summary_of(err)[:3], (1, 1, 1), "stopped after the invalid line")
        rc, _, err, _ = pub(b, "--stop-on-error", "-w", "1", input="\n".join(
            ['{"topic":"ok.a","data":"s2"}', '{"topic":"a..b","data":"x"}',
             '{"topic":"ok.a","data":"never"}']))
        eq(rc, 1, "--stop-on-error exit status (refused)")
        eq(summary_of(err)[:4], (2, 1, 1, 1), "stopped at the refused line")
        eq([e.data for e in c.read_events(5, 0.5)], ["s1", "s2"], "nothing after the stop")
        c.close()


@test
def cli_pub_rate_paces_the_stream():
    with Broker() as b:
        c = b.sse("/events/paced")
        c.wait_head()
        rc, _, err, secs = pub(b, "-t", "paced", "--rate", "50",
                               input="".join("%d\n" % i for i in range(20)))
        eq(rc, 0, "exit status (%r)" % err)
        eq(summary_of(err)[:3], (20, 20, 0), "summary")
        # 20 events at 50/s: the last goes 19/50 = 0.38 s after the first
        check(secs >= 0.3, "20 events at --rate 50 took only %.3f s" % secs)
        eq([e.data for e in c.expect_events(20)], [str(i) for i in range(20)], "all delivered")
        rc, _, err, _ = pub(b, "-t", "paced", "--rate", "0")
        check(rc == 2 and "--rate" in err, "--rate 0 is refused: %d %r" % (rc, err))
        c.close()


@test
def cli_pub_tokens():
    with Broker("--pub-token", "s3cret-token") as b, tempfile.TemporaryDirectory() as tmp:
        c = b.sse("/events/auth")
        c.wait_head()
        rc, out, err, _ = pub(b, "auth", "no token")
        check(rc == 4 and "auth required" in err and "--token" in err,
              "no token: %d %r" % (rc, err))
        rc, out, err, _ = pub(b, "-t", "auth", input="a\nb\n")
        check(rc == 4 and "auth required" in err, "stream without a token: %d %r" % (rc, err))
        rc, out, err, _ = pub(b, "--token", "wrong", "auth", "x")
        check(rc == 4 and "auth failed" in err and out == "", "wrong token: %d %r" % (rc, err))
        tf = os.path.join(tmp, "pub.token")
        with open(tf, "w") as f:
            f.write("s3cret-token\n# comment line\n")
        ids = []
        for args, env in ((["--token", "s3cret-token"], None), (["--token-file", tf], None),
                          ([], {"SPOUT_PUB_TOKEN": "s3cret-token"}),
                          ([], {"SPOUT_PUB_TOKEN_FILE": tf})):
            rc, out, err, _ = pub(b, *(args + ["auth", "ok"]), env=env)
            eq(rc, 0, "token via %s: %r" % (args or env, err))
            ids.append(out.strip())
        rc, out, err, _ = pub(b, "--token-file", tf, "-t", "auth", input="s1\ns2\n")
        eq((rc, summary_of(err)[:2]), (0, (2, 2)), "stream with a token")
        eq([e.id for e in c.expect_events(6)][:4], ids, "published with each token source")
        check(b.metric("spout_publisher_auth_failures_total") >= 1, "wrong token counted")
        c.close()
    # a token for a broker without --pub-token: noted, published anyway
    with Broker() as b:
        rc, out, err, _ = pub(b, "--token", "unneeded", "t", "x")
        check(rc == 0 and ID_RE.match(out.strip()) and "not needed" in err,
              "token not needed: %d %r %r" % (rc, out, err))
        # SPOUT_PUB names the broker, as it names spoutd's listener
        rc, out, err, _ = run_tool([pub_bin(), "t", "x"],
                                   env={"SPOUT_PUB": "0.0.0.0:%d" % b.pub_port})
        check(rc == 0 and ID_RE.match(out.strip()), "SPOUT_PUB=0.0.0.0:port: %d %r" % (rc, err))


@test
def cli_pub_lost_connection_and_interrupt():
    # the broker goes away in the middle of a stream
    b = Broker().__enter__()
    try:
        p = Bg([pub_bin(), "--host", "127.0.0.1:%d" % b.pub_port, "-t", "gone"],
               stdin=subprocess.PIPE)
        p.p.stdin.write(b"one\ntwo\n")
        p.p.stdin.flush()
        wait_for(lambda: b.metrics()["spout_events_published_total"] >= 2, 5,
                 what="two events published")
        b.stop()
        try:
            p.p.stdin.write(b"three\n")
            p.p.stdin.flush()
            p.p.stdin.close()
        except BrokenPipeError:
            pass
        rc = p.finish()
        eq(rc, 3, "exit status after the broker closed (stderr %r)" % p.err())
        check("closed the connection" in p.err(), "message: %r" % p.err())
    finally:
        b.__exit__(None, None, None)
    # SIGINT: stop reading, collect replies, summary, 130
    with Broker() as b:
        c = b.sse("/events/intr")
        c.wait_head()
        p = Bg([pub_bin(), "--host", "127.0.0.1:%d" % b.pub_port, "-t", "intr"],
               stdin=subprocess.PIPE)
        p.p.stdin.write(b"a\nb\nc\n")
        p.p.stdin.flush()
        eq(len(c.expect_events(3)), 3, "published before the interrupt")
        os.kill(p.p.pid, signal.SIGINT)
        rc = p.finish()
        p.p.stdin.close()
        eq(rc, 130, "exit status after SIGINT")
        check("(interrupted)" in p.err() and summary_of(p.err())[:3] == (3, 3, 0),
              "summary after SIGINT: %r" % p.err())
        c.close()


@test
def cli_pub_keepalive_outlives_the_idle_timeout():
    with Broker("--pub-idle-timeout-ms", "1000") as b:
        c = b.sse("/events/quiet")
        c.wait_head()
        p = Bg([pub_bin(), "--host", "127.0.0.1:%d" % b.pub_port, "-t", "quiet",
                "--keepalive", "0.3"], stdin=subprocess.PIPE)
        p.p.stdin.write(b"before\n")
        p.p.stdin.flush()
        c.expect_events(1)
        time.sleep(2.5)                 # quiet input, 2.5 x the broker's idle timeout
        p.p.stdin.write(b"after\n")
        p.p.stdin.close()
        eq(p.finish(), 0, "exit status (stderr %r)" % p.err())
        eq(c.expect_events(1)[0].data, "after", "published after the quiet spell")
        # without keep-alives the broker closes the connection
        p = Bg([pub_bin(), "--host", "127.0.0.1:%d" % b.pub_port, "-t", "quiet",
                "--keepalive", "0"], stdin=subprocess.PIPE)
        p.p.stdin.write(b"before\n")
        p.p.stdin.flush()
        c.expect_events(1)
        time.sleep(2)
        try:
            p.p.stdin.write(b"after\n")
            p.p.stdin.close()
        except BrokenPipeError:
            pass
        eq(p.finish(), 3, "--keepalive 0 gets closed (stderr %r)" % p.err())
        check("idle timeout" in p.err() or "closed the connection" in p.err(),
              "message: %r" % p.err())
        c.close()


def run_on_pty(argv, stdin_data, timeout=20):
    """Run with stderr on a pseudo-terminal (stdout a pipe). Returns
    (rc, what the terminal got, stdout)."""
    master, slave = os.openpty()
    p = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave,
              env=tool_env({"TERM": "xterm"}))
    os.close(slave)
    got = bytearray()

    def reader():
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            got.extend(chunk)
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        out, _ = p.communicate(stdin_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_pid(p)
        raise AssertionError("%s still running after %ds" % (argv[0], timeout))
    finally:
        t.join(5)
        os.close(master)
    text = got.decode("utf-8", "replace")
    no_sanitizer_report(text, os.path.basename(argv[0]))
    return p.returncode, text, out.decode()


@test
def cli_pub_progress_on_a_terminal():
    with Broker() as b, tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ev.jsonl")
        with open(path, "w") as f:
            for i in range(60):
                f.write(json.dumps({"topic": "prog", "data": i}) + "\n")
        base = [pub_bin(), "--host", "127.0.0.1:%d" % b.pub_port]
        # known size: a bar, a percentage and an ETA, redrawn in place
        rc, tty, _ = run_on_pty(base + ["-f", path, "--rate", "100"], b"")
        eq(rc, 0, "exit status (%r)" % tty[-300:])
        check(re.search(r"\r\[[#-]+\] +\d+%  \d+ ok  0 failed  \d+/s  ETA \d+:\d\d", tty),
              "no progress bar on the terminal: %r" % tty[:300])
        check(tty.count("\r[") >= 3, "bar redrawn while it ran: %r" % tty[:300])
        check("100%" in tty, "bar reached 100%%: %r" % tty[-400:])
        eq(summary_of(tty)[:3], (60, 60, 0), "summary on the terminal")
        # unknown size (a pipe): a counter instead
        rc, tty, _ = run_on_pty(base + ["-t", "prog", "--rate", "100"],
                                b"".join(b"%d\n" % i for i in range(40)))
        eq(rc, 0, "exit status (%r)" % tty[-300:])
        check(re.search(r"\r\d+ sent  \d+ ok  0 failed  \d+/s", tty) and "ETA" not in tty,
              "counter for a pipe: %r" % tty[:300])
        # --quiet: nothing at all
        rc, tty, _ = run_on_pty(base + ["-f", path, "-q"], b"")
        eq((rc, tty), (0, ""), "--quiet on a terminal")


# ---------------------------------------------------------------- spout-sub

@test
def cli_sub_json_when_piped_text_on_request():
    with Broker() as b:
        s = sub_bg(b, "--count", "3", "--timeout", "10", "fmt")
        connected(s)
        with b.publisher() as p:
            i1 = p.pub("fmt", "hello world")
            i2 = p.event("fmt", "alert", "line one\nline two")
            i3 = p.pub("fmt", b"ctl \x1b[31m \xff\xfe")
        eq(s.finish(), 0, "exit status")
        eq(s.json_lines(), [
            {"id": str(i1), "topic": "fmt", "event": "message", "data": "hello world"},
            {"id": str(i2), "topic": "fmt", "event": "alert", "data": "line one\nline two"},
            {"id": str(i3), "topic": "fmt", "event": "message",
             "data": "ctl \x1b[31m \ufffd\ufffd"}], "JSON Lines")
        s = sub_bg(b, "--count", "3", "--timeout", "10", "--text", "fmt", "other")
        connected(s)
        with b.publisher() as p:
            j1 = p.pub("fmt", "hello world")
            j2 = p.event("other", "alert", "line one\nline two")
            j3 = p.pub("fmt", "ctl \x1b[31m")
        eq(s.finish(), 0, "exit status --text")
        eq(s.out(), "[%d] message: hello world\n[%d] alert: line one\n    line two\n"
           "[%d] message: ctl ^[[31m\n" % (j1, j2, j3),
           "readable lines: no topic with two topics, data indented, controls shown")


@test
def cli_sub_count_timeout_last_event_id():
    with Broker() as b:
        with b.publisher() as p:
            ids = [p.pub("hist", "e%d" % i) for i in range(5)]
        # --last-event-id: the events after it, from history
        rc, out, err, _ = run_tool([sub_bin(), "--host", "127.0.0.1:%d" % b.http_port,
                                    "--last-event-id", str(ids[1]), "--count", "3",
                                    "--timeout", "10", "hist"])
        eq(rc, 0, "exit status (%r)" % err)
        got = [json.loads(l) for l in out.splitlines()]
        eq([(g["id"], g["data"]) for g in got], [(str(i), "e%d" % k) for k, i in
                                                  enumerate(ids) if k >= 2], "replayed events")
        # --count stops at N though more are there
        rc, out, err, _ = run_tool([sub_bin(), "--host", "127.0.0.1:%d" % b.http_port,
                                    "--last-event-id", "0", "-n", "2", "hist"], timeout=10)
        eq((rc, len(out.splitlines())), (0, 2), "--count 2 (%r)" % err)
        # --timeout with nothing to read: 124, after the time
        rc, out, err, secs = run_tool([sub_bin(), "--host", "127.0.0.1:%d" % b.http_port,
                                       "--timeout", "1", "quiet"])
        eq((rc, out), (124, ""), "--timeout exit status and output (%r)" % err)
        check(secs >= 0.9, "--timeout 1 exited after %.2f s" % secs)
        check("timed out" in err, "timeout message: %r" % err)
        # --timeout ends a --count that is not reached
        rc, out, err, _ = run_tool([sub_bin(), "--host", "127.0.0.1:%d" % b.http_port,
                                    "--last-event-id", "0", "-n", "10", "--timeout", "1",
                                    "hist"])
        eq((rc, len(out.splitlines())), (124, 5), "--count 10 of 5, --timeout 1")


@test
def cli_sub_encodes_topics_and_patterns():
    # what goes on the wire: a scripted server records the request
    def one_event(conn):
        conn.sendall(chunked(b"id: 9\ndata: x\n\n"))
        time.sleep(0.5)
    srv = FakeHTTP([one_event])
    try:
        rc, out, err, _ = run_tool([sub_bin(), "--host", "127.0.0.1:%d" % srv.port, "-n", "1",
                                    "--timeout", "10", "news", "orders.>", "a+b=c@d:e~f",
                                    "x.*.y"])
        eq(rc, 0, "exit status (%r)" % err)
    finally:
        srv.close()
    eq(srv.errors, [], "fake server")
    line = srv.requests[0].split("\r\n")[0]
    eq(line, "GET /events?topic=news&topic=orders.%3E&topic=a%2Bb%3Dc%40d%3Ae~f"
       "&topic=x.%2A.y HTTP/1.1", "request line")
    head = srv.requests[0].lower()
    check("\r\naccept: text/event-stream\r\n" in head and "\r\nhost: 127.0.0.1:" in head,
          "request headers: %r" % srv.requests[0])
    check("last-event-id" not in head and "authorization" not in head,
          "no Last-Event-ID or Authorization unless given: %r" % srv.requests[0])
    eq(json.loads(out), {"id": "9", "event": "message", "data": "x"},
       "no topic field for several topics")
    # and the broker reads them back as the same patterns and topics
    with Broker() as b:
        s = sub_bg(b, "-n", "3", "--timeout", "10", "orders.>", "a+b=c@d:e~f", "x.*.y")
        connected(s)
        with b.publisher() as p:
            p.pub("orders", "not matched: > needs one more segment")
            want = [p.pub("orders.eu.created", "o"), p.pub("a+b=c@d:e~f", "plus"),
                    p.pub("x.middle.y", "star")]
        eq(s.finish(), 0, "exit status")
        eq([(l["id"], l["data"]) for l in s.json_lines()],
           list(zip(map(str, want), ["o", "plus", "star"])), "events matched")


@test
def cli_sub_sse_parsing_and_retry_against_a_scripted_server():
    # one stream with every line ending, split into tiny writes; then the
    # connection drops without the last chunk
    body = (b"\xef\xbb\xbf: a comment, then a BOM-led stream\r\n"
            b"retry: 400\r\n\r\n"
            b"id: 1\r\nevent: first\r\ndata: crlf\r\n\r\n"
            b"id: 2\rdata: cr only\rdata:no space\r"
            b"data\ndata: after an empty data line\n\n"
            b"event: ignored-no-data\n\n"
            b"id: 3\x00bad\ndata: id with NUL ignored\n\n"
            b"id: 4\ndata:  two spaces\n: heartbeat\ndata\n\n"
            b"data: no id here\n\n"
            b"unknown: field\ndata: {\"k\": \"v\"}\n\n")

    def first(conn):
        send_slowly(conn, chunked(body[:50], body[50:51], body[51:]))

    def second(conn):
        conn.sendall(chunked(b"id: 5\ndata: resumed\n\n", b":ok\n\n"))
        conn.sendall(b"0\r\n\r\n")

    def plain_http10(conn):
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                     b"id: 7\ndata: over HTTP/1.0\n\n")
    srv = FakeHTTP([first, second, plain_http10])
    try:
        rc, out, err, _ = run_tool([sub_bin(), "--host", "127.0.0.1:%d" % srv.port, "-n", "7",
                                    "--timeout", "15", "t"])
        eq(rc, 0, "exit status (%r)" % err)
        rc10, out10, err10, _ = run_tool([sub_bin(), "--host", "http://127.0.0.1:%d/" % srv.port,
                                          "--no-reconnect", "--timeout", "10", "t"])
    finally:
        srv.close()
    eq(srv.errors, [], "fake server")
    got = [json.loads(l) for l in out.splitlines()]
    eq(got, [
        {"id": "1", "topic": "t", "event": "first", "data": "crlf"},
        {"id": "2", "topic": "t", "event": "message",
         "data": "cr only\nno space\n\nafter an empty data line"},
        {"id": None, "topic": "t", "event": "message", "data": "id with NUL ignored"},
        {"id": "4", "topic": "t", "event": "message", "data": " two spaces\n"},
        {"id": None, "topic": "t", "event": "message", "data": "no id here"},
        {"id": None, "topic": "t", "event": "message", "data": '{"k": "v"}'},
        {"id": "5", "topic": "t", "event": "message", "data": "resumed"},
    ], "parsed events")
    req2 = srv.requests[1]
    check("\r\nLast-Event-ID: 4\r\n" in req2, "resumed with the last id seen: %r" % req2)
    gap = srv.times[1] - srv.times[0]
    check(gap >= 0.35, "reconnected after %.3f s, before retry: 400" % gap)
    check("reconnecting in" in err, "reconnect notice: %r" % err)
    eq((rc10, [json.loads(l)["data"] for l in out10.splitlines()]), (0, ["over HTTP/1.0"]),
       "close-delimited stream with --no-reconnect (%r)" % err10)


@test(timeout=90)
def cli_sub_resumes_after_the_broker_sheds_it():
    # small queues and socket buffers: a stopped reader is shed (overflow)
    with Broker("--queue", "8", "--queue-bytes", "32768", "--sndbuf", "4096",
                "--retry-ms", "200", "--history", "1000") as b:
        s = sub_bg(b, "shed")
        connected(s)
        payload = "p" * 4000
        want = []
        os.kill(s.p.pid, signal.SIGSTOP)
        try:
            with b.publisher() as p:
                for _ in range(6):
                    want += p.pub_many([("shed", payload)] * 50)
                    if b.metrics().get('spout_connections_shed_total{reason="overflow"}', 0):
                        break
            wait_for(lambda: b.metrics().get('spout_connections_shed_total{reason="overflow"}',
                                             0) >= 1, 5, what="the stopped reader shed")
        finally:
            os.kill(s.p.pid, signal.SIGCONT)
        check(len(want) <= 1000, "published within history")
        lines = s.wait_lines(len(want), 30)
        with b.publisher() as p:
            want.append(p.pub("shed", "live after the resume"))
        lines = s.wait_lines(len(want), 10)
        eq([l["id"] for l in lines], [str(i) for i in want],
           "every event exactly once, in order, across the shed")
        check(all(l["event"] == "message" for l in lines), "no spout-gap")
        check("reconnecting in" in s.err() and s.err().count("connected (HTTP") >= 2,
              "reconnected: %r" % s.err()[-500:])
        s.stop()


@test(timeout=90)
def cli_sub_resumes_across_a_broker_restart_and_prints_the_gap():
    http_port, pub_port = free_port(), free_port()
    while pub_port == http_port:
        pub_port = free_port()
    b1 = Broker("--retry-ms", "200", http_port=http_port, pub_port=pub_port).__enter__()
    try:
        s = sub_bg(b1, "rs")
        connected(s)
        with b1.publisher() as p:
            before = [p.pub("rs", "before %d" % i) for i in range(3)]
        s.wait_lines(3)
        b1.stop()
    finally:
        b1.__exit__(None, None, None)
    s.wait_err("reconnecting in", 10)
    with Broker("--retry-ms", "200", http_port=http_port, pub_port=pub_port) as b2:
        with b2.publisher() as p:
            after = [p.pub("rs", "after %d" % i) for i in range(3)]
        lines = s.wait_lines(7, 30)
        events = [l for l in lines if l["event"] != "spout-gap"]
        gaps = [l for l in lines if l["event"] == "spout-gap"]
        eq([e["id"] for e in events], [str(i) for i in before + after],
           "every event once, in order, across the restart")
        eq(len(gaps), 1, "one spout-gap: %r" % lines)
        eq(gaps[0]["id"], None, "spout-gap has no id")
        gap = json.loads(gaps[0]["data"])
        eq((gap["reason"], gap["last_event_id"]), ("evicted", str(before[-1])),
           "spout-gap says why and from where")
        check(lines.index(gaps[0]) == 3, "the gap comes before the replay: %r" % lines)
        check("gap:" in s.err(), "gap noted on stderr: %r" % s.err()[-400:])
        s.stop()
    # --no-reconnect: a clean end of the stream (broker stopping) is exit 0
    with Broker() as b:
        s = sub_bg(b, "--no-reconnect", "end")
        connected(s)
        b.stop(signal.SIGINT)
        eq(s.finish(), 0, "--no-reconnect, stream ended cleanly (stderr %r)" % s.err())


def hold_the_only_stream(b):
    """A stream holding the one connection a broker allows. The broker's
    own readiness probe may still be closing: retry until it is a 200."""
    deadline = time.monotonic() + 5
    while True:
        c = b.sse("/events/x")
        if c.wait_head().status == 200:
            return c
        c.close()
        check(time.monotonic() < deadline, "no 200 stream within 5 s")
        time.sleep(0.05)


@test
def cli_sub_http_refusals_have_their_own_exit_status():
    tok_news = jwtmint.hs(SECRET, {"sub": "t", "exp": int(time.time()) + 600, "topics": ["news"]})
    expired = jwtmint.hs(SECRET, {"sub": "t", "exp": int(time.time()) - 60, "topics": ["news"]})
    with Broker("--jwt-secret", SECRET) as b, tempfile.TemporaryDirectory() as tmp:
        host = "127.0.0.1:%d" % b.http_port
        for args, rc_want, texts in (
                (["news"], 4, ["HTTP 401", "token required", "--token"]),
                (["--token", expired, "news"], 4, ["HTTP 401", "token expired"]),
                (["--token", tok_news, "sport"], 5,
                 ["HTTP 403", "token does not grant for topic sport"]),
                (["--token", tok_news, "bad..topic"], 3, ["HTTP 400", "empty topic segment"])):
            rc, out, err, _ = run_tool([sub_bin(), "--host", host] + args)
            eq(rc, rc_want, "%s: exit status (%r)" % (args[-1], err))
            for t in texts:
                check(t in err, "%s: %r not in %r" % (args[-1], t, err))
            eq(out, "", "nothing on stdout")
        tf = os.path.join(tmp, "token")
        with open(tf, "w") as f:
            f.write(tok_news + "\n")
        s = sub_bg(b, "--token-file", tf, "-n", "1", "--timeout", "10", "news")
        connected(s)
        with b.publisher() as p:
            i = p.pub("news", "authorised")
        eq(s.finish(), 0, "with a token file")
        eq(s.json_lines()[0]["id"], str(i), "event with a token")
        # the token from the environment; SPOUT_HTTP is only the default
        # (--host wins): authorised, then --timeout
        rc, _, err, _ = run_tool([sub_bin(), "--host", host, "--timeout", "1", "news"],
                                 env={"SPOUT_SUB_TOKEN": tok_news, "SPOUT_HTTP": "x:1"})
        eq(rc, 124, "token from SPOUT_SUB_TOKEN (%r)" % err)
    for flags, rc_want, texts in ((["--max-conns-per-ip", "1"], 6,
                                   ["HTTP 429", "too many connections"]),
                                  (["--max-conns", "1"], 7, ["HTTP 503"])):
        with Broker(*flags) as b:
            hold = hold_the_only_stream(b)
            rc, _, err, _ = run_tool([sub_bin(), "--host", "127.0.0.1:%d" % b.http_port,
                                      "--timeout", "10", "x"])
            check(rc == rc_want and all(t in err for t in texts),
                  "%s: %d %r" % (flags[0], rc, err))
            hold.close()
    rc, _, err, _ = run_tool([sub_bin(), "--host", "127.0.0.1:%d" % free_port(), "x"])
    check(rc == 1 and "cannot connect" in err, "connection refused: %d %r" % (rc, err))


@test(timeout=60)
def cli_sub_token_expiry_ends_or_renews_the_stream():
    def token(ttl):
        return jwtmint.hs(SECRET, {"sub": "t", "exp": int(time.time()) + ttl, "topics": ["exp"]})
    with Broker("--jwt-secret", SECRET, "--jwt-leeway-s", "0", "--retry-ms", "200") as b, \
            tempfile.TemporaryDirectory() as tmp:
        # a token given on the command line cannot be renewed: exit 4
        s = sub_bg(b, "--token", token(3), "exp")
        connected(s)
        with b.publisher() as p:
            i = p.pub("exp", "before expiry")
        s.wait_lines(1)
        rc = s.finish(15)
        eq(rc, 4, "exit status at expiry (stderr %r)" % s.err())
        check("token expired" in s.err() and "--last-event-id %d" % i in s.err(),
              "says how to resume: %r" % s.err())
        eq([l["event"] for l in s.json_lines()], ["message", "spout-auth-expired"],
           "the expiry notice is printed")
        # a token file renewed in time: reconnect with the new token, no loss
        tf = os.path.join(tmp, "token")
        with open(tf, "w") as f:
            f.write(token(3) + "\n")
        s = sub_bg(b, "--token-file", tf, "exp")
        connected(s)
        with open(tf + ".new", "w") as f:
            f.write(token(600) + "\n")
        os.rename(tf + ".new", tf)
        connected(s, 2, 15)
        with b.publisher() as p:
            j = p.pub("exp", "after renewal")
        lines = s.wait_lines(2, 10)
        eq([(l["event"], l["id"]) for l in lines], [("spout-auth-expired", None),
                                                    ("message", str(j))],
           "renewed stream: %r" % lines)
        check("reconnecting with the new one" in s.err(), "renewal noted: %r" % s.err())
        eq(s.stop(), 130, "SIGTERM exit status")
