"""
harness.py - a tiny loopback integration-test framework for spoutd.

Python 3 standard library only. Everything here is bounded by timeouts:
no call blocks forever.

  @test                      register a test function (run.py runs them)
  Broker(*flags, env=...)    start the real spoutd on free 127.0.0.1 ports
                             (plus $SPOUTD_ARGS, e.g. "--io uring")
  SSEClient(port, path)      raw-socket SSE subscriber (chunked + SSE parsing)
  Publisher(port)            raw-socket line-protocol publisher
  raw_http(port, bytes)      send arbitrary bytes, report what the server did

Failures are plain AssertionError (see check()/eq()).
"""
import errno
import os
import re
import select
import signal
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ARTIFACTS = os.path.join(ROOT, "test", "artifacts")


def spoutd_path():
    p = os.environ.get("SPOUTD", "build/spoutd")
    if not os.path.isabs(p) and not os.path.exists(p):
        p = os.path.join(ROOT, p)
    return os.path.abspath(p)


# ---------------------------------------------------------------- registry

TESTS = []          # list of (name, module, fn, timeout)
CURRENT = {"name": None, "logs": [], "brokers": [], "children": []}


def test(fn=None, *, timeout=60):
    """Register a test. Usable as @test or @test(timeout=120)."""
    def reg(f):
        TESTS.append((f.__name__, f.__module__, f, timeout))
        return f
    if fn is not None:
        return reg(fn)
    return reg


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(got, want, what="value"):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def wait_for(pred, timeout, interval=0.02, what="condition"):
    """Poll pred() until it returns a true value; return it. Raises
    AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def src_addr(i):
    """Spread client source addresses over 127.0.0.2..127.0.0.20."""
    return "127.0.0.%d" % (2 + i % 19)


def spawn(argv, **kw):
    """Popen that remembers the child so the runner can kill it (by PID)
    if a test leaves it behind."""
    p = subprocess.Popen(argv, **kw)
    CURRENT["children"].append(p)
    return p


def kill_pid(p):
    """SIGKILL one child we started, by its PID, and reap it."""
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


# ---------------------------------------------------------------- broker

def run_spoutd(args, env_extra=None, timeout=5):
    """Run spoutd to completion (bounded). Returns (rc, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOUT_") or k == "SPOUTD"}
    if env_extra:
        env.update(env_extra)
    # Always give it free loopback ports, so a flag bug cannot make it serve
    # on the defaults (0.0.0.0:8080).
    argv = [spoutd_path(), "--http", "127.0.0.1:%d" % free_port(),
            "--pub", "127.0.0.1:%d" % free_port()] + args
    p = spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
              env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_pid(p)
        p.communicate()
        raise AssertionError("spoutd %s still running after %ds" % (" ".join(args), timeout))
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")



class Broker:
    """Run the real spoutd on free loopback ports.

        with Broker("--heartbeat-ms", "200") as b:
            b.http_port, b.pub_port, b.pid, b.rss_kb(), b.nfds(), b.metrics()

    On exit: SIGTERM, and the process must exit 0 within stop_timeout s
    (else SIGKILL by PID and the test fails).

    http_port/pub_port: listen on these ports instead of free ones (e.g. to
    restart a broker on the ports an earlier one used). host: the loopback
    address both listeners bind (another 127.0.0.x gives several brokers
    the same ports, as on separate hosts)."""

    _seq = 0

    def __init__(self, *flags, env=None, stop_timeout=5.0, start_timeout=5.0,
                 http_port=None, pub_port=None, host="127.0.0.1"):
        self.flags = [str(f) for f in flags]
        self.host = host
        self.fixed_ports = (http_port, pub_port)
        self.env = env
        self.stop_timeout = stop_timeout
        self.start_timeout = start_timeout
        self.proc = None
        self.pid = None
        self.http_port = None
        self.pub_port = None
        self.log_path = None
        self.returncode = None
        self.stopped = False

    # -- start/stop
    def __enter__(self):
        os.makedirs(ARTIFACTS, exist_ok=True)
        last_err = None
        for _attempt in range(3):   # a free port can be taken by a race
            try:
                self._start()
                return self
            except _PortRace as e:
                last_err = e
        raise AssertionError("could not start spoutd: %s" % last_err)

    def _start(self):
        Broker._seq += 1
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", CURRENT["name"] or "broker")
        self.log_path = os.path.join(ARTIFACTS, "%s-%d-%d.log" % (name, os.getpid(), Broker._seq))
        self.http_port = self.fixed_ports[0] or free_port()
        self.pub_port = self.fixed_ports[1] or free_port()
        while self.pub_port == self.http_port:
            self.pub_port = free_port()
        # SPOUTD_ARGS (e.g. "--io uring") is added to every broker; the
        # test's own flags come last and win.
        # Tests stop brokers with SIGTERM; unless a test is about draining
        # (it passes --drain-ms or SPOUT_DRAIN_MS itself), stop at once.
        drain = [] if ("--drain-ms" in self.flags or "SPOUT_DRAIN_MS" in (self.env or {})) \
            else ["--drain-ms", "0"]
        argv = [spoutd_path(), "--http", "%s:%d" % (self.host, self.http_port),
                "--pub", "%s:%d" % (self.host, self.pub_port)] + drain + \
            os.environ.get("SPOUTD_ARGS", "").split() + self.flags
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("SPOUT_") and k != "SPOUTD":
                del env[k]
        if self.env:
            env.update(self.env)
        self._log = open(self.log_path, "wb")
        self._log.write(("# %s\n" % " ".join(argv)).encode())
        self._log.flush()
        self.proc = spawn(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                          stderr=self._log, env=env)
        self.pid = self.proc.pid
        CURRENT["logs"].append(self.log_path)
        CURRENT["brokers"].append(self)
        deadline = time.monotonic() + self.start_timeout
        for port in (self.http_port, self.pub_port):
            while True:
                rc = self.proc.poll()
                if rc is not None:
                    self._log.close()
                    tail = self.log_tail()
                    if "in use" in tail:
                        raise _PortRace(tail)
                    raise AssertionError("spoutd exited %d during start-up:\n%s" % (rc, tail))
                try:
                    s = socket.create_connection((self.host, port), timeout=0.5)
                    s.close()
                    break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError("spoutd did not accept on port %d within %.1fs"
                                         % (port, self.start_timeout))
                time.sleep(0.01)
        # The listeners accept before the threads finish their set-up;
        # /readyz turns 200 only once every thread is serving. Tests that
        # measure a baseline (fds, memory) need that moment, not the first.
        while True:
            try:
                if raw_http(self.http_port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
                            1.0, host=self.host).status == 200:
                    break
            except (OSError, AssertionError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("spoutd not ready (/readyz) within %.1fs" % self.start_timeout)
            time.sleep(0.01)

    def send_signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Send <sig>; wait for exit. Returns (returncode, seconds). If it
        does not exit in time it is SIGKILLed and AssertionError raised."""
        if self.stopped:
            return self.returncode, 0.0
        timeout = self.stop_timeout if timeout is None else timeout
        t0 = time.monotonic()
        if self.proc.poll() is None:
            os.kill(self.pid, sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("spoutd (pid %d) did not exit within %.1fs of %s; killed"
                                 % (self.pid, timeout, signal.Signals(sig).name))
        finally:
            self.stopped = True
            try:
                self._log.close()
            except Exception:
                pass
        self.returncode = rc
        return rc, time.monotonic() - t0

    def kill(self):
        self.stopped = True
        kill_pid(self.proc)
        self.returncode = self.proc.returncode
        try:
            self._log.close()
        except Exception:
            pass

    def __exit__(self, et, ev, tb):
        if self.stopped:
            if et is None and self.returncode not in (0, None):
                raise AssertionError("spoutd exited %r" % self.returncode)
            return False
        died = self.proc.poll()
        try:
            rc, _ = self.stop()
        except AssertionError:
            if et is None:
                raise
            return False   # keep the original failure
        if et is None:
            if died is not None:
                raise AssertionError("spoutd died during the test (exit %d)" % died)
            if rc != 0:
                raise AssertionError("spoutd exited %d after SIGTERM (want 0)" % rc)
            report = self.sanitizer_report()
            if report:
                raise AssertionError("sanitizer report in %s: %s" % (self.log_path, report))
        return False

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                       "WARNING: ThreadSanitizer", "runtime error:")

    def sanitizer_report(self):
        """The first sanitizer line in the broker's log, or None. UBSan and
        TSan may report without changing the exit status, so the log is
        the only reliable witness."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return None
        for line in text.splitlines():
            if any(m in line for m in self.SANITIZER_MARKS):
                return line.strip()
        return None

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- inspection
    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for pid %d" % self.pid)

    def nfds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def metrics(self, timeout=5.0):
        r = raw_http(self.http_port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", timeout,
                     host=self.host)
        if r.status != 200:
            raise AssertionError("GET /metrics: %s" % r.describe())
        return parse_metrics(r.body.decode("utf-8", "replace"))

    def metric(self, name, timeout=5.0):
        m = self.metrics(timeout)
        if name not in m:
            raise AssertionError("metric %s missing from /metrics" % name)
        return m[name]

    # -- clients
    def sse(self, path, **kw):
        kw.setdefault("host", self.host)
        return SSEClient(self.http_port, path, **kw)

    def publisher(self, **kw):
        kw.setdefault("host", self.host)
        return Publisher(self.pub_port, **kw)

    def http(self, data, timeout=5.0, **kw):
        kw.setdefault("host", self.host)
        return raw_http(self.http_port, data, timeout, **kw)


class _PortRace(Exception):
    pass


def parse_metrics(text):
    """Prometheus text -> {"name{labels}": float}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        try:
            out[key] = float(val)
        except ValueError:
            raise AssertionError("bad metrics line %r" % line)
    return out


def cleanup_after_test():
    """Called by the runner: kill (by PID) anything a test left running."""
    for b in CURRENT["brokers"]:
        if b.proc is not None and b.proc.poll() is None:
            b.kill()
    for p in CURRENT["children"]:
        kill_pid(p)
    CURRENT["brokers"] = []
    CURRENT["children"] = []


# ---------------------------------------------------------------- SSE

class Event:
    __slots__ = ("id", "event", "data", "has_id")

    def __init__(self, id, event, data, has_id):
        self.id = id            # last event ID (WHATWG: persists across events)
        self.event = event      # None when no "event:" field (type "message")
        self.data = data
        self.has_id = has_id    # this event carried an "id:" field

    @property
    def type(self):
        return self.event or "message"

    def __repr__(self):
        return "Event(id=%r, event=%r, data=%r)" % (self.id, self.event, self.data)


class SSEParser:
    """Incremental WHATWG event-stream parser over decoded body bytes."""

    def __init__(self):
        self.buf = b""
        self.pending_cr = False      # last byte fed was \r (a \n may follow)
        self.data = []
        self.event = None
        self.last_id = ""
        self.has_id = False
        self.events = []
        self.comments = []
        self.ncomments = 0

    def feed(self, b):
        if not b:
            return
        if self.pending_cr:
            self.pending_cr = False
            if b[:1] == b"\n":
                b = b[1:]
        buf = self.buf + b
        start = 0
        n = len(buf)
        j = buf.find(b"\n")
        k = buf.find(b"\r")
        while j != -1 or k != -1:
            # next line terminator: \r\n, \n or \r (cached positions keep
            # this linear in the buffer size)
            if k == -1 or (j != -1 and j < k):
                line = buf[start:j]
                start = j + 1
            else:
                line = buf[start:k]
                if k + 1 < n:
                    start = k + 2 if buf[k + 1] == 10 else k + 1
                else:
                    start = k + 1
                    self.pending_cr = True
            self._line(line)
            if j != -1 and j < start:
                j = buf.find(b"\n", start)
            if k != -1 and k < start:
                k = buf.find(b"\r", start)
        self.buf = buf[start:]

    def _line(self, line):
        if not line:
            self._dispatch()
            return
        if line[:1] == b":":
            self.ncomments += 1
            if len(self.comments) < 1000:
                self.comments.append(line[1:].decode("utf-8", "replace"))
            return
        c = line.find(b":")
        if c == -1:
            field, value = line, b""
        else:
            field, value = line[:c], line[c + 1:]
            if value[:1] == b" ":
                value = value[1:]
        if field == b"data":
            self.data.append(value.decode("utf-8", "replace"))
        elif field == b"event":
            self.event = value.decode("utf-8", "replace")
        elif field == b"id":
            if b"\0" not in value:
                self.last_id = value.decode("utf-8", "replace")
                self.has_id = True
        # "retry" and unknown fields are ignored here

    def _dispatch(self):
        if not self.data:
            self.event = None
            self.has_id = False
            return
        self.events.append(Event(self.last_id, self.event, "\n".join(self.data), self.has_id))
        self.data = []
        self.event = None
        self.has_id = False


class Head:
    def __init__(self, raw):
        self.raw = raw
        text = raw.decode("latin-1")
        lines = text.split("\r\n")
        self.status_line = lines[0]
        parts = self.status_line.split(" ", 2)
        self.version = parts[0]
        try:
            self.status = int(parts[1])
        except (IndexError, ValueError):
            raise AssertionError("bad status line %r" % self.status_line)
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers = {}
        self.header_list = []
        for l in lines[1:]:
            if not l:
                continue
            name, _, value = l.partition(":")
            name = name.strip().lower()
            value = value.strip()
            self.header_list.append((name, value))
            if name in self.headers:
                self.headers[name] += ", " + value
            else:
                self.headers[name] = value

    def get(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return "Head(%r, %r)" % (self.status_line, self.headers)


class SSEClient:
    """A raw-socket SSE subscriber.

    end states (self.end): None while open; "clean" after the terminating
    zero-length chunk; "eof" on FIN without it; "reset" on ECONNRESET."""

    KEEP = 4096   # bytes of raw/decoded body kept for inspection

    def __init__(self, port, path, http10=False, host="127.0.0.1", src=None,
                 rcvbuf=None, extra_headers="", connect_timeout=5.0, request=None,
                 send=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if src is not None:
            self.sock.bind((src, 0))
        self.sock.settimeout(connect_timeout)
        self.sock.connect((host, port))
        self.sock.setblocking(False)
        self.path = path
        if request is None:
            if http10:
                request = "GET %s HTTP/1.0\r\n%s\r\n" % (path, extra_headers)
            else:
                request = "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, extra_headers)
        if isinstance(request, str):
            request = request.encode("latin-1")
        self.request = request
        self.head = None
        self._hbuf = b""
        self.chunked = None
        self.raw_body = b""          # first KEEP bytes after the head, undecoded
        self.body = b""              # first KEEP decoded body bytes
        self.body_len = 0
        self.parser = SSEParser()
        self._evq = []               # events not yet returned by read_events
        self._ev_off = 0
        self.end = None
        # chunk decoder state
        self._cstate = "size"        # size | data | crlf | trailer | done
        self._cbuf = b""
        self._cleft = 0
        if send:
            self.send(request)

    # -- plumbing
    def fileno(self):
        return self.sock.fileno()

    def send(self, data, timeout=5.0):
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("send to spoutd timed out")
                select.select([], [self.sock], [], left)

    def close(self, rst=False):
        try:
            if rst:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False

    def pump(self, maxbytes=1 << 20):
        """Read whatever is available now without blocking. Returns the
        number of bytes read (0 if nothing/closed)."""
        total = 0
        while self.end is None and total < maxbytes:
            try:
                b = self.sock.recv(262144)
            except BlockingIOError:
                break
            except ConnectionResetError:
                self._set_end("reset")
                break
            except OSError as e:
                if e.errno in (errno.ECONNRESET, errno.EPIPE):
                    self._set_end("reset")
                    break
                raise
            if not b:
                self._set_end("eof")
                break
            total += len(b)
            self._feed(b)
        return total

    def _wait_readable(self, timeout):
        if timeout <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def _set_end(self, how):
        if self.end is None:
            self.end = how

    def _feed(self, b):
        if self.head is None:
            self._hbuf += b
            i = self._hbuf.find(b"\r\n\r\n")
            if i == -1:
                if len(self._hbuf) > 65536:
                    raise AssertionError("response head too long")
                return
            self.head = Head(self._hbuf[:i + 4])
            rest = self._hbuf[i + 4:]
            self._hbuf = b""
            te = self.head.get("transfer-encoding", "").lower()
            self.chunked = "chunked" in te
            b = rest
            if not b:
                return
        if len(self.raw_body) < self.KEEP:
            self.raw_body += b[:self.KEEP - len(self.raw_body)]
        if self.chunked:
            self._dechunk(b)
        else:
            self._body(b)

    def _body(self, b):
        if len(self.body) < self.KEEP:
            self.body += b[:self.KEEP - len(self.body)]
        self.body_len += len(b)
        self.parser.feed(b)

    def _dechunk(self, b):
        buf = self._cbuf + b
        self._cbuf = b""
        pos = 0
        n = len(buf)
        while pos < n:
            st = self._cstate
            if st == "size":
                j = buf.find(b"\r\n", pos)
                if j == -1:
                    if n - pos > 64:
                        raise AssertionError("bad chunk-size line %r" % buf[pos:pos + 64])
                    self._cbuf = buf[pos:]
                    return
                line = buf[pos:j].split(b";", 1)[0].strip()
                try:
                    size = int(line, 16)
                except ValueError:
                    raise AssertionError("bad chunk-size line %r" % buf[pos:j])
                pos = j + 2
                if size == 0:
                    self._cstate = "trailer"
                else:
                    self._cleft = size
                    self._cstate = "data"
            elif st == "data":
                k = min(self._cleft, n - pos)
                self._body(buf[pos:pos + k])
                pos += k
                self._cleft -= k
                if self._cleft == 0:
                    self._cstate = "crlf"
            elif st == "crlf":
                if n - pos < 2:
                    self._cbuf = buf[pos:]
                    return
                if buf[pos:pos + 2] != b"\r\n":
                    raise AssertionError("chunk not followed by CRLF: %r" % buf[pos:pos + 10])
                pos += 2
                self._cstate = "size"
            elif st == "trailer":
                j = buf.find(b"\r\n", pos)
                if j == -1:
                    self._cbuf = buf[pos:]
                    return
                if j == pos:
                    self._cstate = "done"
                    self._set_end("clean")
                pos = j + 2
            else:   # done: anything after the last chunk is a protocol error
                raise AssertionError("bytes after the terminating chunk: %r" % buf[pos:pos + 40])

    # -- API
    def wait_head(self, timeout=5.0):
        """Block until the response head arrives; return a Head (status_line,
        status, headers)."""
        deadline = time.monotonic() + timeout
        while self.head is None:
            if self.end is not None:
                raise AssertionError("connection ended (%s) before a response head; got %r"
                                     % (self.end, self._hbuf[:200]))
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no response head within %.1fs" % timeout)
            if self._wait_readable(left):
                self.pump()
        return self.head

    def _take(self):
        evs = self.parser.events
        if evs:
            self.parser.events = []
            self._evq.extend(evs)

    def read_events(self, n, timeout=5.0):
        """Return up to n events, waiting at most timeout seconds for them
        (fewer if the time runs out or the stream ends)."""
        deadline = time.monotonic() + timeout
        self._take()
        while len(self._evq) < n and self.end is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self._wait_readable(left):
                self.pump()
                self._take()
        out, self._evq = self._evq[:n], self._evq[n:]
        return out

    def expect_events(self, n, timeout=5.0):
        evs = self.read_events(n, timeout)
        if len(evs) != n:
            raise AssertionError("%s: wanted %d events, got %d within %.1fs (end=%s): %r"
                                 % (self.path, n, len(evs), timeout, self.end, evs[:5]))
        return evs

    def expect_no_event(self, wait=0.3):
        evs = self.read_events(1, wait)
        if evs:
            raise AssertionError("%s: unexpected event %r" % (self.path, evs[0]))

    def take_events(self):
        """Events parsed so far (non-blocking)."""
        self._take()
        out, self._evq = self._evq, []
        return out

    def count_ready(self):
        self._take()
        return len(self._evq)

    @property
    def comments(self):
        return self.parser.comments

    @property
    def ncomments(self):
        return self.parser.ncomments

    def wait_end(self, timeout=5.0):
        """Read (and parse) until the stream ends; returns self.end, or None
        if it is still open after timeout."""
        deadline = time.monotonic() + timeout
        while self.end is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self._wait_readable(left):
                self.pump()
        self._take()
        return self.end


# ---------------------------------------------------------------- publisher

class Publisher:
    """A raw-socket line-protocol publisher."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setblocking(False)
        self.timeout = timeout
        self.rbuf = b""
        self.eof = False

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False

    def send_raw(self, data, timeout=None):
        if isinstance(data, str):
            data = data.encode()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("publisher send timed out")
                select.select([], [self.sock], [], left)

    def _fill(self, timeout):
        """Read once (waiting up to timeout). False on timeout."""
        if self.eof:
            return True
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return False
        try:
            b = self.sock.recv(65536)
        except BlockingIOError:
            return True
        except ConnectionResetError:
            self.eof = True
            return True
        if not b:
            self.eof = True
        self.rbuf += b
        return True

    def read_line(self, timeout=None):
        """Next reply line without its \\n (str). None on EOF; AssertionError
        on timeout."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            i = self.rbuf.find(b"\n")
            if i != -1:
                line, self.rbuf = self.rbuf[:i], self.rbuf[i + 1:]
                return line.decode("utf-8", "replace")
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0 or not self._fill(left):
                raise AssertionError("no reply line from the publisher port within %.1fs"
                                     " (buffered %r)" % (timeout, self.rbuf[:100]))

    def expect_line(self, want, timeout=None):
        got = self.read_line(timeout)
        if callable(want):
            check(got is not None and want(got), "publisher reply %r unexpected" % (got,))
        else:
            eq(got, want, "publisher reply")
        return got

    def expect_closed(self, timeout=2.0):
        """Wait for EOF with nothing else to read."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0 or not self._fill(left):
                raise AssertionError("publisher connection not closed within %.1fs" % timeout)
        eq(self.rbuf, b"", "bytes before close")

    @staticmethod
    def _ok_id(line, what):
        if line is None or not line.startswith("OK "):
            raise AssertionError("%s: reply %r, want OK <id>" % (what, line))
        try:
            return int(line[3:])
        except ValueError:
            raise AssertionError("%s: reply %r, want OK <id>" % (what, line))

    def pub(self, topic, data, timeout=None):
        if isinstance(data, str):
            data = data.encode()
        self.send_raw(b"PUB " + topic.encode() + b" " + data + b"\n")
        return self._ok_id(self.read_line(timeout), "PUB %s" % topic)

    def event(self, topic, etype, payload, timeout=None):
        if isinstance(payload, str):
            payload = payload.encode()
        self.send_raw(b"EVENT %s %s %d\n" % (topic.encode(), (etype or "-").encode(),
                                             len(payload)) + payload + b"\n")
        return self._ok_id(self.read_line(timeout), "EVENT %s" % topic)

    def ping(self, timeout=None):
        self.send_raw(b"PING\n")
        eq(self.read_line(timeout), "PONG", "PING reply")

    def pipeline(self, commands, timeout=10.0):
        """Send many commands (bytes, each complete with its line break) in
        as few writes as possible, reading replies concurrently so neither
        side's buffers can deadlock. Returns the reply lines in order."""
        blob = b"".join(commands)
        want = len(commands)
        view = memoryview(blob)
        replies = []
        deadline = time.monotonic() + timeout
        while len(replies) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("pipeline: %d/%d replies within %.1fs"
                                     % (len(replies), want, timeout))
            r, w, _ = select.select([self.sock], [self.sock] if view else [], [], left)
            if w and view:
                try:
                    n = self.sock.send(view[:1 << 20])
                    view = view[n:]
                except BlockingIOError:
                    pass
            if r:
                self._fill(0)
                while True:
                    i = self.rbuf.find(b"\n")
                    if i == -1:
                        break
                    replies.append(self.rbuf[:i].decode("utf-8", "replace"))
                    self.rbuf = self.rbuf[i + 1:]
                if self.eof and len(replies) < want:
                    raise AssertionError("pipeline: connection closed after %d/%d replies"
                                         % (len(replies), want))
        return replies

    def pub_many(self, items, timeout=10.0):
        """items: iterable of (topic, data). Pipelined; returns the ids."""
        cmds = []
        for topic, data in items:
            if isinstance(data, str):
                data = data.encode()
            cmds.append(b"PUB " + topic.encode() + b" " + data + b"\n")
        return [self._ok_id(r, "pipelined PUB") for r in self.pipeline(cmds, timeout)]


# ---------------------------------------------------------------- raw HTTP

class HTTPResult:
    """What the server did with a raw request.

    how: "answered" (a response head arrived), "closed" (EOF with no
    response), "reset" (ECONNRESET with no response), "timeout" (nothing
    within the time limit, connection still open)."""

    def __init__(self, how, raw, elapsed):
        self.how = how
        self.end = how          # how the connection ended: closed/reset/timeout
        self.raw = raw
        self.elapsed = elapsed
        self.status = None
        self.headers = {}
        self.body = b""
        self.head = None
        i = raw.find(b"\r\n\r\n")
        if i != -1 and raw.startswith(b"HTTP/"):
            self.head = Head(raw[:i + 4])
            self.status = self.head.status
            self.headers = self.head.headers
            self.body = raw[i + 4:]
            self.how = "answered"

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def describe(self):
        if self.status is not None:
            return "%s %r body=%r (then %s)" % (self.head.status_line, self.headers,
                                                self.body[:200], self.end)
        return "%s (raw %r) after %.2fs" % (self.how, self.raw[:200], self.elapsed)


def raw_http(port, data, timeout=5.0, host="127.0.0.1", src=None, until_close=True,
             chunks=None, chunk_delay=0.0):
    """Send <data> (or each element of <chunks> with <chunk_delay> between)
    and read until the server closes (or a complete Content-Length body when
    until_close is False). Never blocks longer than <timeout> overall."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    s = socket.socket()
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    s.setblocking(False)
    raw = b""
    how = None
    pieces = chunks if chunks is not None else [data]
    pending = memoryview(b"")
    idx = 0
    next_send = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                how = "timeout"
                break
            if not pending and idx < len(pieces) and now >= next_send:
                p = pieces[idx]
                pending = memoryview(p.encode("latin-1") if isinstance(p, str) else p)
                idx += 1
                next_send = now + chunk_delay
            wantw = [s] if pending else []
            wait = deadline - now
            if not pending and idx < len(pieces):
                wait = min(wait, max(0.0, next_send - now))
            r, w, _ = select.select([s], wantw, [], wait)
            if w and pending:
                try:
                    n = s.send(pending)
                    pending = pending[n:]
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    pending = memoryview(b"")
                    idx = len(pieces)   # the server gave up on us: just read
            if r:
                try:
                    b = s.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    how = "reset"
                    break
                if not b:
                    how = "closed"
                    break
                raw += b
                if not until_close:
                    res = HTTPResult("open", raw, 0)
                    cl = res.headers.get("content-length")
                    if res.status is not None and cl is not None and len(res.body) >= int(cl):
                        how = "answered"
                        break
    finally:
        s.close()
    return HTTPResult(how, raw, time.monotonic() - t0)


def assert_serving(b, topic="alive.check"):
    """The broker still subscribes, publishes and delivers."""
    with b.sse("/events/" + topic) as c:
        h = c.wait_head(5)
        eq(h.status, 200, "status of a normal subscription")
        with b.publisher() as p:
            i = p.pub(topic, "still-here")
        ev = c.expect_events(1, 5)[0]
        eq((ev.id, ev.data), (str(i), "still-here"), "event after bad input")
