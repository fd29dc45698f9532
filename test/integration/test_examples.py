"""The client examples of docs/clients.md (docs/examples/), run as a user
would run them, unmodified, against the real broker.

- docs/clients.md's code blocks are the example files (tools/docs_examples.py);
- the Python subscriber's SSE parser against the WHATWG rules;
- for Python and for Node: publisher -> broker -> subscriber with exact data,
  types and ids; resumption across a broker restart on the same ports and a
  connection cut by a relay (Last-Event-ID checked on the wire, the
  broker's retry: waited), every event exactly once; a running publisher
  reconnecting across the restart; ERR replies in a pipeline; publisher
  AUTH with SPOUT_PUB_TOKEN; subscriber JWT with SPOUT_TOKEN;
- the browser page in headless Chromium (playwright-core), with ?token=,
  named events and resumption across a restart.

Every process here is started by the test, bounded, and stopped by PID.
The Node examples are run from a temporary copy of docs/examples/node/
whose node_modules links to test/clients/node_modules (eventsource 3.0.7,
installed by tools/deps.sh test).
"""
import importlib.util
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from harness import (ARTIFACTS, CURRENT, ROOT, Broker, check, eq, free_port, kill_pid, spawn,
                     test)
import jwtmint

EX = os.path.join(ROOT, "docs", "examples")
CLIENTS = os.path.join(ROOT, "test", "clients")
CHROMIUM = "/usr/bin/chromium"
RETRY_MS = 1000          # --retry-ms of the brokers the resuming subscribers use


def _load(name, path):
    """Import a file without leaving __pycache__/ next to it."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.dont_write_bytecode = saved
    return mod


# ------------------------------------------------------------------ processes


class Proc:
    """One example program, in its own session. Its stdout lines are kept
    (JSON-decoded when they are JSON), its stderr lines too, and copied to
    test/artifacts/."""

    def __init__(self, argv, env=None, stdin=False, label="proc", cwd=None):
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.argv = [str(a) for a in argv]
        self.err_path = os.path.join(ARTIFACTS, "%s-%s-%d.stderr.log"
                                     % (CURRENT["name"] or "examples", label, os.getpid()))
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SPOUT_")}
        full_env.update(env or {})
        self.proc = spawn(self.argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                          cwd=cwd, start_new_session=True)
        self.out, self.err = [], []
        self._lock = threading.Lock()
        self._errf = open(self.err_path, "ab")
        self._errf.write(("# %s\n" % " ".join(self.argv)).encode())
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out),
                                          daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.err),
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self, f, into):
        for raw in f:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            if into is self.err:
                self._errf.write(raw)
                self._errf.flush()
            with self._lock:
                into.append(text)

    def lines(self):
        with self._lock:
            return list(self.out)

    def errs(self):
        with self._lock:
            return list(self.err)

    def events(self):
        return [json.loads(l) for l in self.lines() if l.startswith("{")]

    def describe(self):
        return "%s (exit %s)\n  stdout: %s\n  stderr (%s): %s" % (
            " ".join(os.path.basename(a) for a in self.argv[:2]) + " " + " ".join(self.argv[2:]),
            self.proc.poll(), "\n    ".join(self.lines()[-30:]),
            os.path.relpath(self.err_path, ROOT), "\n    ".join(self.errs()[-30:]))

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if self.proc.poll() is not None:
                for t in self._threads:
                    t.join(2)
                v = pred()
                if v:
                    return v
                raise AssertionError("%s exited before %s:\n%s" % (self.argv[1], what,
                                                                   self.describe()))
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %.1fs waiting for %s:\n%s"
                                     % (timeout, what, self.describe()))
            time.sleep(0.02)

    def wait_err(self, text, n=1, timeout=15.0):
        """Wait until n stderr lines contain <text>."""
        self.wait(lambda: len([l for l in self.errs() if text in l]) >= n, timeout,
                  "%d stderr line(s) with %r" % (n, text))

    def wait_data(self, data, timeout=15.0):
        return self.wait(lambda: [e for e in self.events() if e.get("data") == data], timeout,
                         "an event with data %r" % data)[0]

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def next_reply(self, n_before, timeout=20.0):
        """The stdout line after the first n_before ones."""
        return self.wait(lambda: self.lines()[n_before:n_before + 1], timeout,
                         "reply line %d" % (n_before + 1))[0]

    def publish(self, line, timeout=20.0):
        """stdin-mode publisher: send one line, return its OK id (int)."""
        n = len(self.lines())
        self.send(line)
        reply = self.next_reply(n, timeout)
        check(reply.startswith("OK "), "reply to %r: %r\n%s" % (line, reply, self.describe()))
        return int(reply[3:])

    def finish(self, timeout=15.0):
        """Wait (bounded) for the process to exit by itself; return its status."""
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError("%s still running after %.1fs; killed:\n%s"
                                 % (self.argv[1], timeout, self.describe()))
        for t in self._threads:
            t.join(5)
        self._errf.close()
        return rc

    def stop(self):
        """SIGTERM, then SIGKILL, by PID."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        kill_pid(self.proc)
        for t in self._threads:
            t.join(2)
        try:
            self._errf.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()
        return False


class Relay:
    """A loopback TCP relay in front of the broker's HTTP port: it records
    each request head that crosses it (when, and its headers), and cut()
    ends every relayed connection, a network failure the broker did not
    cause."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.heads = []
        self._pairs = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.lsock], [], [], 0.05)
            if r and not self._stop.is_set():
                try:
                    c, _ = self.lsock.accept()
                except OSError:
                    continue
                t = threading.Thread(target=self._serve, args=(c,), daemon=True)
                t.start()
                with self._lock:
                    self._threads.append(t)

    def _serve(self, c):
        c.settimeout(5.0)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf and len(buf) < 65536:
                b = c.recv(65536)
                if not b:
                    break
                buf += b
        except OSError:
            pass
        lines = buf.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        head = {"t": time.monotonic(), "request": lines[0], "headers": {}}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            head["headers"][k.strip().lower()] = v.strip()
        try:
            u = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2.0)
            head["upstream"] = "connected"
        except OSError as e:
            head["upstream"] = "refused: %s" % e
            u = None
        with self._lock:
            self.heads.append(head)
            if u is not None:
                self._pairs.append((c, u))
        if u is None:
            c.close()
            return
        try:
            u.sendall(buf)
            while not self._stop.is_set():
                r, _, _ = select.select([c, u], [], [], 0.05)
                for s in r:
                    b = s.recv(65536)
                    if not b:
                        raise EOFError
                    (u if s is c else c).sendall(b)
        except (OSError, EOFError):
            pass
        finally:
            c.close()
            u.close()

    def cut(self):
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def snapshot(self):
        with self._lock:
            return [dict(h) for h in self.heads]

    def close(self):
        self._stop.set()
        self.cut()
        self.lsock.close()
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False


# ------------------------------------------------------------------ languages


class Lang:
    """How to run one language's examples."""

    def __init__(self, name):
        self.name = name
        self.tmp = None

    def __enter__(self):
        if self.name == "node":
            check(shutil.which("node"), "node is not on PATH (run tools/deps.sh test)")
            mods = os.path.join(CLIENTS, "node_modules")
            check(os.path.isfile(os.path.join(mods, "eventsource", "package.json")),
                  "test/clients/node_modules/eventsource is missing (run tools/deps.sh test)")
            with open(os.path.join(mods, "eventsource", "package.json")) as f:
                have = json.load(f)["version"]
            with open(os.path.join(EX, "node", "package.json")) as f:
                want = json.load(f)["dependencies"]["eventsource"]
            check(want.lstrip("^~") == have, "docs/examples/node/package.json wants eventsource"
                  " %s, test/clients has %s" % (want, have))
            self.tmp = tempfile.mkdtemp(prefix="spout-node-examples-")
            for f in os.listdir(os.path.join(EX, "node")):
                shutil.copy(os.path.join(EX, "node", f), self.tmp)
            os.symlink(mods, os.path.join(self.tmp, "node_modules"))
        return self

    def __exit__(self, *a):
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def pub_argv(self, args):
        if self.name == "python":
            return [sys.executable, os.path.join(EX, "python", "publish.py")] + list(args)
        return ["node", os.path.join(self.tmp, "publish.mjs")] + list(args)

    def sub_argv(self, args, types=()):
        if self.name == "python":        # prints every event, named or not
            return [sys.executable, os.path.join(EX, "python", "subscribe.py")] + list(args)
        extra = []
        for t in types:                  # EventSource needs a listener per name
            extra += ["--type", t]
        return ["node", os.path.join(self.tmp, "subscribe.mjs")] + extra + list(args)

    def publisher(self, b, args, env=None, stdin=False, label="publish"):
        e = {"SPOUT_PUB": "127.0.0.1:%d" % b.pub_port}
        e.update(env or {})
        return Proc(self.pub_argv(args), env=e, stdin=stdin, label="%s-%s" % (self.name, label))

    def publish(self, b, args, env=None):
        """Run the publisher to completion: (exit status, stdout lines, proc)."""
        with self.publisher(b, args, env) as p:
            rc = p.finish(30)
            return rc, p.lines(), p

    def subscriber(self, url, args, types=(), env=None, label="subscribe"):
        e = {"SPOUT_URL": url}
        e.update(env or {})
        return Proc(self.sub_argv(args, types), env=e, label="%s-%s" % (self.name, label))


def _ids(lines, what):
    ids = []
    for l in lines:
        check(l.startswith("OK "), "%s: reply %r, want OK <id> (all: %r)" % (what, l, lines))
        ids.append(str(int(l[3:])))
    return ids


def ev(id, data, event="message"):
    return {"id": str(id), "event": event, "data": data}


# ------------------------------------------------------------------ docs


@test(timeout=10)
def clients_md_blocks_are_the_example_files():
    tool = _load("docs_examples", os.path.join(ROOT, "tools", "docs_examples.py"))
    with open(os.path.join(ROOT, "docs", "clients.md"), encoding="utf-8") as f:
        text = f.read()
    eq(tool.problems(text), [], "docs/clients.md vs docs/examples/")
    found = {p for p, _, _, _ in tool.blocks(text)}
    for want in ("python/publish.py", "python/subscribe.py", "node/publish.mjs",
                 "node/subscribe.mjs", "go/publish/main.go", "go/subscribe/main.go",
                 "browser/index.html"):
        check("docs/examples/" + want in found, "docs/clients.md does not include " + want)
    # the check can fail: one changed byte in a block is found
    path, start, end, content = tool.blocks(text)[0]
    lines = text.splitlines(keepends=True)
    changed = "".join(lines[:start + 1]) + content.replace("\n", " \n", 1) + "".join(lines[end - 1:])
    bad = tool.problems(changed)
    check(len(bad) == 1 and path in bad[0], "a changed block was not reported: %r" % bad)


# ------------------------------------------------------------------ the Python parser


@test(timeout=10)
def python_sse_parser_follows_whatwg():
    sub = _load("spout_example_subscribe", os.path.join(EX, "python", "subscribe.py"))

    def parse(chunks, last=""):
        p = sub.SSEParser(last)
        out = []
        for c in chunks:
            out += [tuple(e) for e in p.feed(c)]
        return out, p

    stream = (b"\xef\xbb\xbf:ok\nretry: 2500\n\n"
              b"id: 1\ndata: one\n\n"
              b"data:no space\r\ndata:  two spaces\r\n\r\n"     # CRLF; id 1 persists
              b"id: 3\revent: alert\rdata: a\rdata:\rdata: b\r\r"  # lone CR; empty data line
              b": heartbeat\n\n"                                  # comment, then nothing
              b"id: 4\n\n"                                        # id without data: no event
              b"data: after\nunknown: x\nfield-without-colon\n\n"
              b"id: 5\x00x\ndata: nul id ignored\nretry: 12a\n\n"
              b"event: spout-gap\ndata: {\"reason\":\"evicted\"}\n\n"
              b"id\ndata: empty id\n\n"
              b"data: h\xc3\xa9llo \xe2\x9c\x93\n\n"
              b"data: cut off at the end\n")
    want = [("message", "one", "1"),
            ("message", "no space\n two spaces", "1"),
            ("alert", "a\n\nb", "3"),
            ("message", "after", "4"),
            ("message", "nul id ignored", "4"),
            ("spout-gap", '{"reason":"evicted"}', "4"),
            ("message", "empty id", ""),
            ("message", "h\u00e9llo \u2713", "")]
    # whole, byte by byte (CRLF and UTF-8 split across reads), and in 7s
    for name, chunks in (("whole", [stream]),
                         ("bytewise", [stream[i:i + 1] for i in range(len(stream))]),
                         ("7-byte", [stream[i:i + 7] for i in range(0, len(stream), 7)])):
        got, p = parse(chunks)
        eq(got, want, "events (%s)" % name)
        eq(p.retry_ms, 2500, "retry (%s): the last valid retry: field" % name)
        eq(p.last_event_id, "", "last event id at the end (%s)" % name)
    # a new connection carries the id over until the stream sets one
    got, p = parse([b"retry: x\n\ndata: resumed\n\n"], last="41")
    eq(got, [("message", "resumed", "41")], "events after a reconnection")
    eq((p.retry_ms, p.last_event_id), (None, "41"), "retry and id after a reconnection")
    # CR then LF in the next read is one line break, not two
    got, _ = parse([b"data: x\r", b"\ndata: y\r", b"\n\r", b"\n"])
    eq(got, [("message", "x\ny", "")], "CRLF split across reads")


# ------------------------------------------------------------------ exchange


def _exchange(lang_name):
    with Lang(lang_name) as lang, Broker() as b:
        url = "http://127.0.0.1:%d" % b.http_port
        with lang.subscriber(url, ["ex.news", "ex.other"], types=["alert"]) as sub:
            sub.wait_err("connected", 1)
            texts = ["hello", "two\nlines", "", " leading space, UTF-8: h\u00e9llo \u2713",
                     "tab\there", "cr\rinside", "PUB ex.news injected"]
            rc, out1, _ = lang.publish(b, ["ex.news"] + texts)
            eq(rc, 0, "publisher exit status (%r)" % out1)
            ids1 = _ids(out1, "PUB/EVENT")
            eq(len(ids1), len(texts), "replies")
            typed = ["a\r\nb\nc", "ends in a break\n"]
            rc, out2, _ = lang.publish(b, ["--type", "alert", "ex.other"] + typed)
            eq(rc, 0, "publisher exit status with --type (%r)" % out2)
            ids2 = _ids(out2, "EVENT with a type")
            rc, out3, _ = lang.publish(b, ["ex.news", "end"])
            ids3 = _ids(out3, "sentinel")
            sub.wait_data("end")
            want = [ev(i, d) for i, d in zip(ids1, ["hello", "two\nlines", "",
                                                    " leading space, UTF-8: h\u00e9llo \u2713",
                                                    "tab\there", "cr\ninside",
                                                    "PUB ex.news injected"])]
            want += [ev(i, d, "alert") for i, d in zip(ids2, ["a\nb\nc", "ends in a break\n"])]
            want += [ev(ids3[0], "end")]
            eq(sub.events(), want, "events the subscriber printed")
            all_ids = [int(i) for i in ids1 + ids2 + ids3]
            eq(all_ids, sorted(set(all_ids)), "ids grow")

        # a subscriber started with a stored position gets what followed it
        with lang.subscriber(url, ["ex.news", "ex.other", "--last-event-id", ids1[4]],
                             types=["alert"], label="subscribe-stored") as sub2:
            sub2.wait_data("end")
            eq(sub2.events(), want[5:], "events after a stored --last-event-id")


@test(timeout=60)
def python_examples_exchange_events():
    _exchange("python")


@test(timeout=60)
def node_examples_exchange_events():
    _exchange("node")


# ------------------------------------------------------------------ resumption


def _resume(lang_name):
    topic = "ex.resume"
    with Lang(lang_name) as lang, Broker("--retry-ms", RETRY_MS) as b1, Relay(b1.http_port) as relay:
        with lang.subscriber(relay.url, [topic]) as sub, \
                lang.publisher(b1, [topic], stdin=True, label="publish-stdin") as pub:
            sub.wait_err("connected", 1)
            before = [pub.publish("before-%d" % k) for k in (1, 2, 3)]
            sub.wait_data("before-3")

            # 1. the broker restarts on the same ports; the publisher, left
            #    running, must reconnect, and the subscriber resume
            rc, _ = b1.stop()
            eq(rc, 0, "first broker's exit status")
            n = len(pub.lines())
            pub.send("during-restart")
            pub.wait_err("retrying", 1)        # it found the broker gone, and backs off
            with Broker("--retry-ms", RETRY_MS, http_port=b1.http_port,
                        pub_port=b1.pub_port) as b2:
                reply = pub.next_reply(n)
                check(reply.startswith("OK "), "reply after the restart: %r" % reply)
                during = int(reply[3:])
                sub.wait_err("connected", 2)
                after = pub.publish("after-restart")
                sub.wait_data("after-restart")

                # 2. the connection drops, the broker stays up
                nheads = len(relay.snapshot())
                t_cut = time.monotonic()
                relay.cut()
                cut = pub.publish("while-cut")
                eq(len(relay.snapshot()), nheads,
                   "requests: the subscriber reconnected before its retry: delay")
                sub.wait_err("connected", 3)
                final = pub.publish("final")
                sub.wait_data("final")
                eq(pub.finish(15), 0, "publisher exit status\n" + pub.describe())

        heads = relay.snapshot()
        gap = ev(before[-1], json.dumps({"reason": "evicted",
                                         "last_event_id": str(before[-1])},
                                        separators=(",", ":")), "spout-gap")
        want = [ev(i, "before-%d" % k) for k, i in zip((1, 2, 3), before)] + \
            [gap, ev(during, "during-restart"), ev(after, "after-restart"),
             ev(cut, "while-cut"), ev(final, "final")]
        eq(sub.events(), want, "events, each once, in order (the gap: history did not"
           " survive the restart)")
        check(during > before[-1], "ids continue above the first broker's")

    # on the wire: no Last-Event-ID at first; then the last id seen before
    # each disconnect
    eq(heads[0]["headers"].get("last-event-id"), None, "Last-Event-ID on the first request")
    phase1, phase2 = heads[1:nheads], heads[nheads:]
    check(phase1 and phase2, "requests through the relay: %r" % heads)
    for h in phase1:
        eq(h["headers"].get("last-event-id"), str(before[-1]), "Last-Event-ID after the restart")
    for h in phase2:
        eq(h["headers"].get("last-event-id"), str(after), "Last-Event-ID after the cut")
    eq(phase2[-1]["upstream"], "connected", "the reconnect after the cut reached the broker")
    # the broker's retry: is --retry-ms plus 0-50 %: the subscriber waited
    # at least that long after the cut
    waited = phase2[0]["t"] - t_cut
    check(waited >= RETRY_MS / 1000.0, "reconnected %.3fs after the cut, before the broker's"
          " retry: (>= %d ms)" % (waited, RETRY_MS))


@test(timeout=90)
def python_examples_resume_after_restart_and_cut():
    _resume("python")


@test(timeout=90)
def node_examples_resume_after_restart_and_cut():
    _resume("node")


# ------------------------------------------------------------------ ERR replies


def _errors(lang_name):
    with Lang(lang_name) as lang, Broker("--max-payload", 32) as b:
        with b.sse("/events/ex.err") as c:
            c.wait_head(5)
            big = "x" * 40
            big_lines = "y\n" * 20          # an EVENT: its payload must be skipped
            rc, out, _ = lang.publish(b, ["ex.err", "ok-1", big, "ok-2", big_lines, "ok-3"])
            eq(rc, 1, "exit status when an event was refused")
            eq(len(out), 5, "one reply per event: %r" % out)
            eq([l.split(" ")[0] for l in out], ["OK", "ERR", "OK", "ERR", "OK"], "replies")
            eq(out[1], "ERR payload too large", "reply to the oversized PUB")
            eq(out[3], "ERR payload too large", "reply to the oversized EVENT")
            evs = c.expect_events(3, 5)
            eq([(e.id, e.data) for e in evs],
               [(out[0][3:], "ok-1"), (out[2][3:], "ok-2"), (out[4][3:], "ok-3")],
               "what subscribers got")
            c.expect_no_event(0.3)
        rc, out, _ = lang.publish(b, ["bad/topic", "x"])
        eq((rc, out), (1, ["ERR invalid character in topic"]), "invalid topic")
        rc, out, _ = lang.publish(b, ["--type", "has.a.type", "ex.err*", "x"])
        eq((rc, out), (1, ["ERR invalid character in topic"]), "invalid topic in an EVENT")


@test(timeout=60)
def python_publisher_reports_err():
    _errors("python")


@test(timeout=60)
def node_publisher_reports_err():
    _errors("node")


# ------------------------------------------------------------------ auth


PUB_TOKEN = "ex-pub-token-0123456789abcdef"
JWT_SECRET = "ex-jwt-secret-0123456789abcdef-0123"


def _auth(lang_name):
    with Lang(lang_name) as lang:
        with Broker("--pub-token", PUB_TOKEN) as b:
            with b.sse("/events/ex.auth") as c:
                c.wait_head(5)
                rc, out, _ = lang.publish(b, ["ex.auth", "one", "two\nlines"],
                                          env={"SPOUT_PUB_TOKEN": PUB_TOKEN})
                eq(rc, 0, "exit status with SPOUT_PUB_TOKEN (%r)" % out)
                ids = _ids(out, "publish after AUTH")
                evs = c.expect_events(2, 5)
                eq([(e.id, e.data) for e in evs], list(zip(ids, ["one", "two\nlines"])),
                   "events published after AUTH")
            rc, out, _ = lang.publish(b, ["ex.auth", "x"])
            eq((rc, out), (1, ["ERR auth required: send AUTH <token> first"]),
               "without SPOUT_PUB_TOKEN")
            rc, out, p = lang.publish(b, ["ex.auth", "x"], env={"SPOUT_PUB_TOKEN": "wrong"})
            eq((rc, out), (2, []), "with a wrong token: exit status and replies")
            check(any("auth failed" in l for l in p.errs()), "the refusal is reported:\n"
                  + p.describe())
            eq(b.metric("spout_publisher_auth_failures_total"), 1.0, "AUTH failures counted")

        # subscribers: a JWT in SPOUT_TOKEN goes as Authorization: Bearer
        with Broker("--jwt-secret", JWT_SECRET) as b, Relay(b.http_port) as relay:
            tok = jwtmint.hs(JWT_SECRET, {"sub": "ex", "exp": int(time.time()) + 600,
                                          "topics": ["ex.>"]})
            with lang.subscriber(relay.url, ["ex.jwt"], env={"SPOUT_TOKEN": tok}) as sub:
                sub.wait_err("connected", 1)
                rc, out, _ = lang.publish(b, ["ex.jwt", "for token holders"])
                ids = _ids(out, "publish")
                sub.wait_data("for token holders")
                eq(sub.events(), [ev(ids[0], "for token holders")], "events with a token")
            eq(relay.snapshot()[0]["headers"].get("authorization"), "Bearer " + tok,
               "Authorization header on the wire")
            with lang.subscriber(relay.url, ["ex.jwt"], label="subscribe-no-token") as sub:
                rc = sub.finish(15)
                check(rc not in (0, None), "exit status without a token: %r" % rc)
                check(any("401" in l for l in sub.errs()), "the 401 is reported:\n"
                      + sub.describe())
                eq(sub.events(), [], "events without a token")


@test(timeout=60)
def python_examples_authenticate():
    _auth("python")


@test(timeout=60)
def node_examples_authenticate():
    _auth("node")


# ------------------------------------------------------------------ browser


@test(timeout=90)
def browser_example_page_in_chromium():
    check(shutil.which("node"), "node is not on PATH (run tools/deps.sh test)")
    check(os.path.isfile(os.path.join(CLIENTS, "node_modules", "playwright-core", "package.json")),
          "test/clients/node_modules/playwright-core is missing (run tools/deps.sh test)")
    check(os.access(CHROMIUM, os.X_OK), "%s is missing (run tools/deps.sh test)" % CHROMIUM)
    topic = "ex.browser"
    page_port = free_port()
    origin = "http://127.0.0.1:%d" % page_port
    flags = ["--cors-origin", origin, "--jwt-secret", JWT_SECRET, "--retry-ms", RETRY_MS]
    tok = jwtmint.hs(JWT_SECRET, {"sub": "page", "exp": int(time.time()) + 600,
                                  "topics": [topic]})
    with Broker(*flags) as b1:
        spout = "http://127.0.0.1:%d" % b1.http_port
        args = ["node", os.path.join(CLIENTS, "example_page.mjs"),
                "--page", os.path.join(EX, "browser", "index.html"), "--page-port", page_port,
                "--spout", spout, "--topic", topic, "--token", tok, "--until-data", "final",
                "--timeout", 60000]
        with Proc(args, label="chromium", cwd=CLIENTS) as page:
            page.wait(lambda: [l for l in page.events() if l.get("text") == "open"], 20,
                      "the page's stream to open")
            with b1.publisher() as p:
                i1 = p.pub(topic, "plain")
                i2 = p.event(topic, "alert", b"line one\r\nline two")
                p.event(topic, "unheard", b"no listener for this type")
                i4 = p.pub(topic, "after the unheard one")
            page.wait(lambda: [l for l in page.events() if l.get("id") == str(i4)], 10,
                      "the last event of the first broker")
            b1.stop()
            with Broker(*flags, http_port=b1.http_port, pub_port=b1.pub_port) as b2:
                with b2.publisher() as p:
                    i5 = p.pub(topic, "published before the page came back")
                page.wait(lambda: [l for l in page.events() if l.get("id") == str(i5)], 20,
                          "the event published while the page was away")
                with b2.publisher() as p:
                    i6 = p.pub(topic, "final")
                eq(page.finish(30), 0, "example_page.mjs exit status\n" + page.describe())
    items = [(l["type"], l["id"], l["text"]) for l in page.events() if l.get("kind") == "item"]
    eq(items, [
        ("message", str(i1), "message #%d: plain" % i1),
        ("alert", str(i2), "alert #%d: line one\nline two" % i2),
        ("message", str(i4), "message #%d: after the unheard one" % i4),
        ("spout-gap", str(i4), "(missed events after #%d: evicted)" % i4),
        ("message", str(i5), "message #%d: published before the page came back" % i5),
        ("message", str(i6), "message #%d: final" % i6),
    ], "what the page shows")
    errors = [l for l in page.events() if l.get("kind") == "pageerror"]
    eq(errors, [], "page errors")
