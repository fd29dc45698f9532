"""
cluster.py - helpers for cluster-mode (--redis backplane) integration tests.

Python 3 standard library only; every wait is bounded in time, and only
processes started here are signalled, always by PID.

  RedisServer(port=None, *args)   the real redis-server on a loopback port
      .start() .stop() .kill() .pause() .resume() .cli(*cmd) .port .url
  HAProxy(servers)                haproxy in front of spoutd nodes: an HTTP
                                  frontend (SSE, /readyz health checks) and
                                  a TCP frontend for the line protocol
      .http_port .pub_port .states() .wait_up(n) .wait_status(srv, st)
  Cluster(*flags, nodes=3)        a RedisServer + N harness.Broker nodes
                                  (--redis, a per-test --redis-prefix) +
                                  an HAProxy in front
      .nodes[i] .redis .lb .prefix .channels() .kill_node(i) ...

Failures are AssertionError, as in harness.py.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from harness import (ARTIFACTS, CURRENT, Broker, Publisher, SSEClient, check, free_port,
                     kill_pid, raw_http, spawn, wait_for)

REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
HAPROXY = os.environ.get("HAPROXY", "/usr/sbin/haproxy")

_seq = [0]


def _next_seq():
    _seq[0] += 1
    return _seq[0]


def _test_name(default):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", CURRENT.get("name") or default)


def _tail(path, n=30):
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
    except OSError:
        return ""


def _stop_proc(proc, sig=signal.SIGTERM, timeout=5.0):
    """Send <sig> to one child by PID and reap it; SIGKILL after timeout.
    Returns (returncode, killed)."""
    if proc is None:
        return None, False
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_pid(proc)
            return proc.returncode, True
    return proc.returncode, False


# ---------------------------------------------------------------- RESP

class RedisError(Exception):
    """An error reply (-ERR ...) from Redis."""


def resp_encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a)
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RedisConn:
    """A minimal blocking RESP2 client over one socket. Bulk strings are
    returned as str (UTF-8, errors replaced), nil as None, arrays as lists,
    error replies raise RedisError. Every call is bounded by <timeout>."""

    def __init__(self, port, host="127.0.0.1", timeout=2.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

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

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("redis: no reply within %.1fs" % self.timeout)
        self.sock.settimeout(left)
        try:
            b = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError("redis: no reply within %.1fs" % self.timeout)
        if not b:
            raise ConnectionError("redis closed the connection")
        self.buf += b

    def _line(self, deadline):
        while True:
            i = self.buf.find(b"\r\n")
            if i != -1:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill(deadline)

    def _exact(self, n, deadline):
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _value(self, deadline):
        line = self._line(deadline)
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            return self._exact(n, deadline).decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._value(deadline) for _ in range(n)]
        raise AssertionError("redis: bad reply line %r" % line[:100])

    def call(self, *args):
        deadline = time.monotonic() + self.timeout
        self.sock.settimeout(self.timeout)
        self.sock.sendall(resp_encode(args))
        v = self._value(deadline)
        if isinstance(v, RedisError):
            raise v
        return v


# ---------------------------------------------------------------- redis

class RedisServer:
    """The real redis-server on 127.0.0.1, no persistence.

        with RedisServer() as r:
            r.cli("SET", "k", "v"); r.port; r.url
            r.stop(); r.start()      # restarted EMPTY on the same port
            r.pause(); r.resume()    # SIGSTOP / SIGCONT
    Its output goes to ARTIFACTS/<test>-redis-<pid>-<n>.log (all runs of
    this instance appended). port: use this port (else a free one, kept for
    every restart). args: extra redis-server arguments."""

    def __init__(self, port=None, *args, start_timeout=5.0, stop_timeout=5.0):
        self.port = port
        self._fixed = port is not None
        self.args = [str(a) for a in args]
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.proc = None
        self.paused = False
        self.starts = 0
        self.dir = None
        self.log_path = None
        self._log = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def url(self):
        return "127.0.0.1:%d" % self.port

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, et, ev, tb):
        self.close()
        return False

    def close(self):
        try:
            self.stop()
        finally:
            if self.dir:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def start(self):
        """Start (or restart, empty, on the same port). Returns when PING
        answers PONG."""
        check(not self.alive(), "redis-server already running (pid %s)" % self.pid)
        os.makedirs(ARTIFACTS, exist_ok=True)
        if self.log_path is None:
            self.log_path = os.path.join(ARTIFACTS, "%s-redis-%d-%d.log"
                                         % (_test_name("redis"), os.getpid(), _next_seq()))
        # a fresh, empty working directory per start: redis-server loads a
        # dump.rdb it finds there even with --save ''
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = tempfile.mkdtemp(prefix="spout-redis-")
        last = None
        for _attempt in range(1 if self._fixed or self.starts else 3):
            if self.port is None or (not self._fixed and not self.starts and last):
                self.port = free_port()
            try:
                self._start_once()
                self.starts += 1
                return self
            except _RedisPortRace as e:
                last = e
        raise AssertionError("could not start redis-server on port %s: %s" % (self.port, last))

    def _start_once(self):
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", self.dir, "--protected-mode", "yes",
                "--loglevel", "notice"] + self.args
        self._log = open(self.log_path, "ab")
        self._log.write(("# %s\n" % " ".join(a if a else "''" for a in argv)).encode())
        self._log.flush()
        self.proc = spawn(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                          stderr=self._log)
        self.paused = False
        CURRENT["logs"].append(self.log_path)
        deadline = time.monotonic() + self.start_timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self._log.close()
                tail = _tail(self.log_path)
                if "already in use" in tail:
                    raise _RedisPortRace(tail)
                raise AssertionError("redis-server exited %d during start-up:\n%s" % (rc, tail))
            try:
                if self.cli("PING", timeout=0.5) == "PONG":
                    return
            except RedisError as e:
                if str(e).startswith("NOAUTH"):     # --requirepass: it answers
                    return
            except (OSError, AssertionError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                kill_pid(self.proc)
                raise AssertionError("redis-server not answering PING on port %d within %.1fs"
                                     % (self.port, self.start_timeout))
            time.sleep(0.02)

    def stop(self, timeout=None):
        """SIGTERM (after SIGCONT if paused) and wait; SIGKILL after the
        timeout. Returns the exit status (None if never started)."""
        if self.proc is None:
            return None
        if self.paused and self.proc.poll() is None:
            self.resume()
        rc, _ = _stop_proc(self.proc, signal.SIGTERM,
                           self.stop_timeout if timeout is None else timeout)
        try:
            self._log.close()
        except Exception:
            pass
        return rc

    def kill(self):
        """SIGKILL by PID (a crash)."""
        if self.proc is not None:
            kill_pid(self.proc)
            self.paused = False
            try:
                self._log.close()
            except Exception:
                pass

    def pause(self):
        """SIGSTOP: the process keeps its sockets but answers nothing."""
        check(self.alive(), "redis-server not running")
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def conn(self, timeout=2.0):
        return RedisConn(self.port, timeout=timeout)

    def cli(self, *args, timeout=2.0, password=None, db=None):
        """Run one command on a new connection (after AUTH/SELECT if
        given); returns the decoded reply, raises RedisError on -ERR."""
        with RedisConn(self.port, timeout=timeout) as c:
            if password is not None:
                c.call("AUTH", password)
            if db is not None:
                c.call("SELECT", db)
            return c.call(*args)


class _RedisPortRace(Exception):
    pass


# ---------------------------------------------------------------- haproxy

HAPROXY_CFG = """\
# written by test/integration/cluster.py, modelled on deploy/haproxy.cfg
global
    log stdout format raw local0 info
    maxconn 4096
    stats socket {sock} mode 600 level admin
    hard-stop-after 5s

defaults
    log global
    option dontlognull
    timeout connect 1s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    # SSE streams: long server/client timeouts (spoutd heartbeats keep
    # them alive); tunnel for the TCP publisher frontend
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout client-fin 5s
    timeout server-fin 5s
    timeout check 1s

frontend spout_http
    mode http
    bind 127.0.0.1:{http_port}
    option httplog
    default_backend spout_http

backend spout_http
    mode http
    balance leastconn
    option http-server-close
    option http-no-delay
    retry-on conn-failure empty-response 503
    retries 2
    option redispatch 1
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host spout
    http-check expect status 200
    default-server check inter {inter}ms fastinter {fastinter}ms downinter {inter}ms fall {fall} rise {rise}
{http_servers}

listen spout_pub
    mode tcp
    bind 127.0.0.1:{pub_port}
    option tcplog
    timeout client 1h
    timeout server 1h
    balance leastconn
    # a node takes publishers while its HTTP side is ready (same check)
{pub_servers}
{extra}
"""


class HAProxy:
    """haproxy in front of spoutd nodes, in the foreground (-db), by PID.

        with HAProxy([broker1, broker2]) as lb:       # or (name, http, pub)
            lb.wait_up()                              # every server UP
            lb.http_port, lb.pub_port, lb.states(), lb.sse(path)

    Servers are named n1..nN (or the given names) in the backends
    "spout_http" (HTTP, /readyz checked every inter_ms) and "spout_pub"
    (TCP, each server tracks its spout_http twin)."""

    HTTP_BACKEND = "spout_http"
    PUB_BACKEND = "spout_pub"

    def __init__(self, servers, inter_ms=200, fastinter_ms=100, fall=2, rise=2,
                 http_port=None, pub_port=None, extra="", start_timeout=5.0,
                 stop_timeout=5.0):
        self.servers = []
        for k, s in enumerate(servers):
            if isinstance(s, (tuple, list)):
                name, hp, pp = s
            else:
                name, hp, pp = "n%d" % (k + 1), s.http_port, s.pub_port
            self.servers.append((name, hp, pp))
        self.inter_ms, self.fastinter_ms, self.fall, self.rise = inter_ms, fastinter_ms, fall, rise
        self.fixed_ports = (http_port, pub_port)
        self.extra = extra
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.proc = None
        self.http_port = None
        self.pub_port = None
        n = _next_seq()
        base = "%s-haproxy-%d-%d" % (_test_name("haproxy"), os.getpid(), n)
        self.cfg_path = os.path.join(ARTIFACTS, base + ".cfg")
        self.log_path = os.path.join(ARTIFACTS, base + ".log")
        # unix socket paths are limited to 107 bytes: keep this one short
        self.sock_path = os.path.join(ARTIFACTS, "hap-%d-%d.sock" % (os.getpid(), n))
        if len(self.sock_path) > 100:
            self.sock_path = os.path.join(tempfile.gettempdir(),
                                          "hap-%d-%d.sock" % (os.getpid(), n))
        self._log = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def names(self):
        return [s[0] for s in self.servers]

    def config(self):
        http = "\n".join("    server %s 127.0.0.1:%d" % (n, hp) for n, hp, _ in self.servers)
        pub = "\n".join("    server %s 127.0.0.1:%d track %s/%s" % (n, pp, self.HTTP_BACKEND, n)
                        for n, _, pp in self.servers)
        return HAPROXY_CFG.format(sock=self.sock_path, http_port=self.http_port,
                                  pub_port=self.pub_port, inter=self.inter_ms,
                                  fastinter=self.fastinter_ms, fall=self.fall, rise=self.rise,
                                  http_servers=http, pub_servers=pub, extra=self.extra)

    def __enter__(self):
        os.makedirs(ARTIFACTS, exist_ok=True)
        last = None
        for _attempt in range(3):
            try:
                self._start()
                return self
            except _HAProxyPortRace as e:
                last = e
        raise AssertionError("could not start haproxy: %s" % last)

    def _start(self):
        self.http_port = self.fixed_ports[0] or free_port()
        self.pub_port = self.fixed_ports[1] or free_port()
        while self.pub_port == self.http_port:
            self.pub_port = free_port()
        with open(self.cfg_path, "w") as f:
            f.write(self.config())
        try:
            os.unlink(self.sock_path)
        except OSError:
            pass
        argv = [HAPROXY, "-f", self.cfg_path, "-db"]
        self._log = open(self.log_path, "ab")
        self._log.write(("# %s\n" % " ".join(argv)).encode())
        self._log.flush()
        self.proc = spawn(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        CURRENT["logs"].append(self.log_path)
        deadline = time.monotonic() + self.start_timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self._log.close()
                tail = _tail(self.log_path)
                if "cannot bind" in tail.lower() or "in use" in tail:
                    raise _HAProxyPortRace(tail)
                raise AssertionError("haproxy exited %d during start-up:\n%s" % (rc, tail))
            try:
                self.command("show info", timeout=0.5)
                for port in (self.http_port, self.pub_port):
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except (OSError, AssertionError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("haproxy not serving within %.1fs:\n%s"
                                     % (self.start_timeout, _tail(self.log_path)))
            time.sleep(0.02)

    def stop(self):
        """SIGTERM (haproxy's hard stop) by PID; SIGKILL after the timeout."""
        rc, _ = _stop_proc(self.proc, signal.SIGTERM, self.stop_timeout)
        try:
            self._log.close()
        except Exception:
            pass
        try:
            os.unlink(self.sock_path)
        except OSError:
            pass
        return rc

    def __exit__(self, et, ev, tb):
        self.stop()
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- runtime API
    def command(self, cmd, timeout=2.0):
        """One command on the admin socket; returns its text answer."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            s.connect(self.sock_path)
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("haproxy: no answer to %r within %.1fs" % (cmd, timeout))
                s.settimeout(left)
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    raise AssertionError("haproxy: no answer to %r within %.1fs" % (cmd, timeout))
                if not b:
                    break
                out += b
        finally:
            s.close()
        return out.decode("utf-8", "replace")

    def stat_rows(self):
        """`show stat` as a list of dicts (pxname, svname, status, ...)."""
        text = self.command("show stat")
        lines = [l for l in text.splitlines() if l.strip()]
        if not lines or not lines[0].startswith("# "):
            raise AssertionError("haproxy: unexpected show stat answer %r" % text[:200])
        cols = lines[0][2:].split(",")
        return [dict(zip(cols, l.split(","))) for l in lines[1:]]

    def states(self, backend=HTTP_BACKEND):
        """{server name: status} for one backend: "UP", "DOWN", "UP 1/2"
        (going down), "DOWN 1/2" (coming up), "MAINT", "NOLB"..."""
        return {r["svname"]: r["status"] for r in self.stat_rows()
                if r.get("pxname") == backend and r.get("svname") not in ("FRONTEND", "BACKEND")}

    def up_count(self, backend=HTTP_BACKEND):
        return sum(1 for st in self.states(backend).values() if st == "UP")

    def _up_rows(self, backend):
        """Servers UP for real: status UP and, where the server runs its own
        check, that check passed (haproxy starts servers UP before their
        first check)."""
        out = {}
        for r in self.stat_rows():
            if r.get("pxname") != backend or r.get("svname") in ("FRONTEND", "BACKEND"):
                continue
            cs = r.get("check_status", "")
            out[r["svname"]] = r["status"] + ("" if cs in ("", "L7OK", "L6OK", "L4OK")
                                              else " (check %s)" % cs)
        return out

    def wait_up(self, n=None, backend=HTTP_BACKEND, timeout=10.0):
        """Wait until exactly n servers (default: all) of <backend> are UP."""
        n = len(self.servers) if n is None else n
        last = [None]

        def ok():
            last[0] = self._up_rows(backend)
            return sum(1 for st in last[0].values() if st == "UP") == n
        try:
            wait_for(ok, timeout, interval=0.05, what="%d %s servers UP" % (n, backend))
        except AssertionError as e:
            raise AssertionError("%s (last states %r)" % (e, last[0]))
        return self

    def wait_status(self, server, status, backend=HTTP_BACKEND, timeout=10.0):
        """Wait until <server>'s status is exactly <status> ("UP", "DOWN")."""
        last = [None]

        def ok():
            last[0] = self.states(backend).get(server)
            return last[0] == status
        try:
            wait_for(ok, timeout, interval=0.05, what="%s/%s %s" % (backend, server, status))
        except AssertionError as e:
            raise AssertionError("%s (last status %r)" % (e, last[0]))

    def set_state(self, server, state, backend=HTTP_BACKEND):
        """state: ready | drain | maint (runtime API)."""
        return self.command("set server %s/%s state %s" % (backend, server, state))

    # -- clients through the balancer
    def sse(self, path, **kw):
        return SSEClient(self.http_port, path, **kw)

    def publisher(self, **kw):
        return Publisher(self.pub_port, **kw)

    def http(self, data, timeout=5.0, **kw):
        """raw_http through the balancer. HAProxy keeps the client side of
        a connection open after a response (keep-alive), so by default this
        reads one Content-Length response instead of waiting for a close."""
        kw.setdefault("until_close", False)
        return raw_http(self.http_port, data, timeout, **kw)


class _HAProxyPortRace(Exception):
    pass


# ---------------------------------------------------------------- cluster

def unique_prefix():
    """A --redis-prefix unique to this test and process ([A-Za-z0-9_.:-],
    at most 64 bytes)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", CURRENT.get("name") or "cluster")[:40]
    return "%s-%d-%d" % (name, os.getpid(), _next_seq())


class Cluster:
    """A RedisServer + <nodes> spoutd nodes sharing it + HAProxy in front.

        with Cluster("--history", "50", node_flags={0: ["--drain-ms", "1000"]}) as cl:
            cl.nodes[0].publisher().pub(...)
            cl.nodes[2].sse("/events/t")
            cl.lb.sse(...), cl.lb.publisher(), cl.redis.cli("PUBSUB", "CHANNELS", "*")

    flags go to every node; node_flags {index: [flags]} to one node. Every
    node gets --redis 127.0.0.1:<port> --redis-prefix <prefix> first (unless
    redis_flag=False: then the caller's flags must say where Redis is).
    lb=False: no HAProxy. On exit: HAProxy, then the nodes (each must exit
    0 on SIGTERM, as harness.Broker requires, except nodes killed on
    purpose with kill_node()), then Redis."""

    def __init__(self, *flags, nodes=3, node_flags=None, prefix=None, lb=True,
                 redis_args=(), env=None, redis_flag=True, start_timeout=10.0,
                 stop_timeout=5.0, wait_lb=True):
        self.flags = [str(f) for f in flags]
        self.n = nodes
        if isinstance(node_flags, (list, tuple)):
            node_flags = dict(enumerate(node_flags))
        self.node_flags = {k: [str(f) for f in v] for k, v in (node_flags or {}).items()}
        self.prefix = prefix or unique_prefix()
        self.want_lb = lb
        self.redis_args = list(redis_args)
        self.env = env
        self.redis_flag = redis_flag
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.wait_lb = wait_lb
        self.redis = None
        self.nodes = []
        self.lb = None
        self._retired = []      # brokers replaced by restart_node (already stopped)
        self._killed = set()    # id() of brokers killed on purpose

    def node_args(self, i=None, *extra):
        """The flags node i (or a new node) is started with."""
        base = ["--redis", self.redis.url, "--redis-prefix", self.prefix] if self.redis_flag else []
        return base + self.flags + (self.node_flags.get(i, []) if i is not None else []) + \
            [str(e) for e in extra]

    def new_broker(self, i=None, *extra, **kw):
        """A harness.Broker (not started) configured like node i."""
        kw.setdefault("env", self.env)
        kw.setdefault("start_timeout", self.start_timeout)
        kw.setdefault("stop_timeout", self.stop_timeout)
        return Broker(*self.node_args(i, *extra), **kw)

    def __enter__(self):
        try:
            self.redis = RedisServer(None, *self.redis_args).__enter__()
            for i in range(self.n):
                b = self.new_broker(i)
                b.__enter__()
                self.nodes.append(b)
            if self.want_lb:
                self.lb = HAProxy(self.nodes).__enter__()
                if self.wait_lb:
                    self.lb.wait_up(timeout=self.start_timeout)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, et, ev, tb):
        first = None
        if self.lb is not None:
            try:
                self.lb.__exit__(et, ev, tb)
            except Exception as e:   # noqa: BLE001
                first = first or e
        for b in reversed(self.nodes + self._retired):
            if id(b) in self._killed:
                if b.proc is not None and b.proc.poll() is None:
                    b.kill()
                continue
            try:
                b.__exit__(et if first is None else type(first), ev if first is None else first,
                           tb)
            except Exception as e:   # noqa: BLE001
                first = first or e
        if self.redis is not None:
            try:
                self.redis.__exit__(et, ev, tb)
            except Exception as e:   # noqa: BLE001
                first = first or e
        if first is not None and et is None:
            raise first
        return False

    # -- node control
    def kill_node(self, i):
        """SIGKILL node i by PID; the cluster's exit will not fail for it."""
        b = self.nodes[i]
        self._killed.add(id(b))
        b.kill()
        return b

    def stop_node(self, i, sig=signal.SIGTERM, timeout=None):
        """Signal node i and wait for its exit: (returncode, seconds)."""
        return self.nodes[i].stop(sig=sig, timeout=timeout)

    def restart_node(self, i, *extra):
        """Start a new node i on the ports of the old one (which must have
        exited), so the HAProxy configuration still points at it."""
        old = self.nodes[i]
        check(not old.alive(), "node %d still running" % i)
        b = self.new_broker(i, *extra, http_port=old.http_port, pub_port=old.pub_port)
        b.__enter__()
        self._retired.append(old)
        self.nodes[i] = b
        return b

    # -- inspection
    def channel(self, topic):
        return "%s:e:%s" % (self.prefix, topic)

    def channels(self):
        """Sorted PUBSUB CHANNELS <prefix>:e:* (topics some node wants)."""
        return sorted(self.redis.cli("PUBSUB", "CHANNELS", "%s:e:*" % self.prefix))

    def channel_topics(self):
        pre = "%s:e:" % self.prefix
        return sorted(c[len(pre):] for c in self.channels())

    def numsub(self, topic):
        """How many Redis connections (nodes) subscribe to topic's channel."""
        r = self.redis.cli("PUBSUB", "NUMSUB", self.channel(topic))
        return int(r[1])

    def numpat(self):
        return int(self.redis.cli("PUBSUB", "NUMPAT"))

    def readyz(self, i):
        """(status, body text) of node i's /readyz."""
        r = self.nodes[i].http(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 3.0)
        return r.status, r.body.decode("utf-8", "replace")

    def wait_ready(self, i, status=200, timeout=10.0, body=None):
        """Wait until node i's /readyz answers <status> (and its body
        starts with <body> if given). Returns the body."""
        last = [None]

        def ok():
            try:
                last[0] = self.readyz(i)
            except (OSError, AssertionError) as e:
                last[0] = repr(e)
                return False
            st, text = last[0]
            return st == status and (body is None or text.startswith(body))
        try:
            wait_for(ok, timeout, interval=0.05,
                     what="node %d /readyz %d%s" % (i, status, " %r" % body if body else ""))
        except AssertionError as e:
            raise AssertionError("%s (last answer %r)" % (e, last[0]))
        return last[0][1]

    def metric(self, i, name, default=None):
        """One value from node i's /metrics (default if absent)."""
        m = self.nodes[i].metrics()
        if name not in m:
            if default is None:
                raise AssertionError("metric %s missing from node %d's /metrics" % (name, i))
            return default
        return m[name]

    def lb_sse(self, path, **kw):
        return self.lb.sse(path, **kw)

    def lb_publisher(self, **kw):
        return self.lb.publisher(**kw)

