"""The shipped deploy/haproxy.cfg, run for real: three cluster-mode spoutd
nodes on their own loopback addresses (127.0.0.21-23, the same ports on
each, as on three hosts), one redis-server, and haproxy started from the
file in deploy/ with only what a test host must change (listen ports, the
admin socket path, the node addresses, and maxconn: 200000 needs more fds
than this host's hard limit of 20000). Each substitution must hit exactly
as often as the shipped file says, so a config that drifts from what this
test checks fails here instead of silently testing something else."""
import os
import re
import signal
import socket
import subprocess

from cluster import HAPROXY, HAProxy, RedisServer, unique_prefix
from harness import (ARTIFACTS, ROOT, Broker, check, eq, free_port, kill_pid, raw_http, spawn,
                     spoutd_path, test, wait_for)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(ROOT, "deploy", "haproxy.cfg")
HOSTS = ("127.0.0.21", "127.0.0.22", "127.0.0.23")


class ShippedHAProxy(HAProxy):
    """HAProxy running deploy/haproxy.cfg. <node_http>/<node_pub> are the
    ports every node listens on (the shipped file's tcp-check connects to
    one port for all servers, so the nodes share ports on distinct hosts)."""

    def __init__(self, node_http, node_pub, **kw):
        servers = [("spout%d" % (i + 1), node_http, node_pub) for i in range(len(HOSTS))]
        super().__init__(servers, **kw)
        self.node_http, self.node_pub = node_http, node_pub
        self.stats_port = None

    def config(self):
        with open(SHIPPED) as f:
            text = f.read()
        self.stats_port = self.stats_port or free_port()

        def sub(pattern, repl, count):
            nonlocal text
            text, n = re.subn(pattern, repl, text, flags=re.M)
            if n != count:
                raise AssertionError("deploy/haproxy.cfg changed: %r matched %d times, "
                                     "this test expects %d" % (pattern, n, count))

        sub(r"^(\s*stats socket )\S+", r"\g<1>" + self.sock_path, 1)
        # 200000 connections need 400k fds; this host's hard limit is 20000.
        sub(r"^(\s*maxconn )200000$", r"\g<1>4000", 2)
        sub(r"^(\s*bind ):8080$", r"\g<1>127.0.0.1:%d" % self.http_port, 1)
        sub(r"^(\s*bind ):7400$", r"\g<1>127.0.0.1:%d" % self.pub_port, 1)
        sub(r"^(\s*bind ):8404$", r"\g<1>127.0.0.1:%d" % self.stats_port, 1)
        for i, host in enumerate(HOSTS):
            sub(r"\bspout%d:8080\b" % (i + 1), "%s:%d" % (host, self.node_http), 1)
            sub(r"\bspout%d:7400\b" % (i + 1), "%s:%d" % (host, self.node_pub), 1)
        sub(r"(tcp-check connect port )8080\b", r"\g<1>%d" % self.node_http, 1)
        sub(r"(tcp-check connect port )7400\b", r"\g<1>%d" % self.node_pub, 1)
        return text


def _shared_ports():
    """A (http, pub) port pair free on every node address."""
    for _ in range(20):
        hp, pp = free_port(HOSTS[0]), free_port(HOSTS[0])
        if hp != pp and all(_bindable(h, p) for h in HOSTS[1:] for p in (hp, pp)):
            return hp, pp
    raise AssertionError("no port pair free on all of %s" % (HOSTS,))


def _bindable(host, port):
    s = socket.socket()
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class ShippedSetup:
    """redis-server + three nodes on HOSTS + haproxy from deploy/."""

    def __init__(self, *node_flags):
        self.node_flags = node_flags

    def __enter__(self):
        self.redis = RedisServer().__enter__()
        self.nodes = []
        try:
            hp, pp = _shared_ports()
            prefix = unique_prefix()
            for host in HOSTS:
                b = Broker("--redis", self.redis.url, "--redis-prefix", prefix,
                           *self.node_flags, host=host, http_port=hp, pub_port=pp,
                           start_timeout=10.0)
                self.nodes.append(b.__enter__())
            self.lb = ShippedHAProxy(hp, pp).__enter__()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, et, ev, tb):
        lb = getattr(self, "lb", None)
        if lb is not None:
            lb.stop()
        for b in self.nodes:
            b.__exit__(et, ev, tb)
        self.redis.__exit__(et, ev, tb)
        return False


@test(timeout=60)
def shipped_haproxy_cfg_passes_haproxy_check():
    p = subprocess.run([HAPROXY, "-c", "-f", SHIPPED], capture_output=True, timeout=20)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    eq(p.returncode, 0, "haproxy -c deploy/haproxy.cfg:\n%s" % out)
    # Only the expected warnings: the compose service names do not resolve here.
    for line in out.splitlines():
        if "WARNING" in line:
            check("could not resolve address 'spout" in line, "unexpected warning: %s" % line)


@test(timeout=90)
def shipped_haproxy_cfg_serves_a_cluster():
    with ShippedSetup() as s:
        lb = s.lb
        lb.wait_up(3, backend="spout_http", timeout=15)
        lb.wait_up(3, backend="spout_pub", timeout=15)
        # Streams through the balancer land on the nodes (leastconn).
        clients = [lb.sse("/events/deploy") for _ in range(6)]
        try:
            for c in clients:
                eq(c.wait_head().status, 200, "stream head through haproxy")
            wait_for(lambda: all(b.metric("spout_connections_open") >= 1 for b in s.nodes),
                     10, what="every node holds streams")
            # A publish through the TCP frontend reaches every stream, on
            # every node, with one id.
            with lb.publisher() as p:
                ids = [p.pub("deploy", "e%d" % i) for i in range(5)]
            for c in clients:
                got = c.expect_events(5)
                eq([int(e.id) for e in got], ids, "ids through haproxy")
                eq([e.data for e in got], ["e%d" % i for i in range(5)], "data")
        finally:
            for c in clients:
                c.close()
        # The frontend answers paths it does not serve itself.
        r = lb.http(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(r.status, 404, "unknown path")
        r = lb.http(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(r.status, 200, "/readyz through haproxy")
        # A draining node (SIGTERM) turns /readyz 503: the shipped checks
        # take it out of both backends, the others stay up.
        s.nodes[0].stop(signal.SIGTERM, timeout=15)
        lb.wait_status("spout1", "DOWN", backend="spout_http", timeout=10)
        lb.wait_status("spout1", "DOWN", backend="spout_pub", timeout=10)
        eq(lb.up_count("spout_http"), 2, "the other nodes stay up")
        # With every node gone, an EventSource is told to retry later (a
        # 200 stream with a jittered retry:) instead of a 503 it would
        # give up on: at once, while the checks have not noticed yet and
        # HAProxy itself fails to connect ...
        for b in s.nodes[1:]:
            b.stop(signal.SIGTERM, timeout=15)
        _expect_sse_retry(lb, (b":unavailable", b":no-backend"), "nodes just gone")
        # ... and once every server is marked DOWN.
        wait_for(lambda: set(lb.states("spout_http").values()) == {"DOWN"}, 10,
                 what="all nodes DOWN")
        _expect_sse_retry(lb, (b":no-backend",), "all nodes DOWN")


def _expect_sse_retry(lb, comments, what):
    r = lb.http(b"GET /events/deploy HTTP/1.1\r\nHost: x\r\n\r\n")
    eq(r.status, 200, "%s: status (%s)" % (what, r.describe()))
    check("text/event-stream" in r.headers.get("content-type", ""),
          "%s: an SSE answer: %s" % (what, r.describe()))
    check(r.body.startswith(comments), "%s: body %r" % (what, r.body))
    m = re.search(rb"retry: (\d+)", r.body)
    check(m and 5000 <= int(m.group(1)) <= 10000, "%s: jittered retry 5-10 s: %r"
          % (what, r.body))


# ---------------------------------------------------------------- shipped settings

def _env_lines(path, start=None, stop=None):
    """SPOUT_* settings of a deploy file, as a dict: `KEY: "v"` (YAML),
    `KEY=v` (env file, Dockerfile ENV), from the line matching <start> up
    to the first line matching <stop> after it."""
    out, on = {}, start is None
    with open(path) as f:
        for line in f:
            if not on:
                on = re.search(start, line) is not None
                if not on:
                    continue
            elif stop and re.search(stop, line):
                break
            m = re.match(r'\s*(?:ENV\s+)?(SPOUT_[A-Z0-9_]+)\s*[:=]\s*"?([^"\\\n]*)"?\s*\\?$', line)
            if m:
                out[m.group(1)] = m.group(2).strip()
    return out


def _start_with_env(env_vars, redis):
    """spoutd with only these settings (no flags): the listeners' ports
    swapped for free ones, Redis pointed at <redis>. Returns (http_port,
    proc, log path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOUT_")}
    env.update(env_vars)
    ports = {}
    for k in ("SPOUT_HTTP", "SPOUT_PUB"):
        host = env.get(k, "127.0.0.1:0").rsplit(":", 1)[0]
        ports[k] = free_port("0.0.0.0")
        env[k] = "%s:%d" % (host, ports[k])
    if "SPOUT_REDIS" in env:
        env["SPOUT_REDIS"] = redis.url
        env["SPOUT_REDIS_PREFIX"] = unique_prefix()
    env["SPOUT_DRAIN_MS"] = "0"
    log_path = os.path.join(ARTIFACTS, "%s-%d.log" % (unique_prefix(), os.getpid()))
    log = open(log_path, "wb")
    p = spawn([spoutd_path()], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    log.close()
    return ports["SPOUT_HTTP"], p, log_path


@test(timeout=90)
def shipped_environments_start_and_serve():
    """The settings deploy/ ships (the image's ENV, Compose's node
    environment, the Kubernetes ConfigMap, the systemd env file) are all
    names spoutd knows, and spoutd starts and answers /readyz with each."""
    d = os.path.join(ROOT, "deploy")
    image = _env_lines(os.path.join(d, "Dockerfile"), r"^ENV SPOUT_", r"^\s*$")
    sources = {
        "Dockerfile ENV": image,
        "docker-compose.yml": dict(image, **_env_lines(os.path.join(d, "docker-compose.yml"),
                                                       r"^x-spout-node:", r"^\s+stop_signal:")),
        "k8s/configmap.yaml": dict(image, **_env_lines(os.path.join(d, "k8s", "configmap.yaml"),
                                                       r"^data:")),
        "spoutd.env": _env_lines(os.path.join(d, "spoutd.env")),
    }
    check("SPOUT_PUB_INSECURE" in image and image.get("SPOUT_PUB", "").startswith("0.0.0.0"),
          "the image binds the publisher port on all interfaces: %r" % image)
    with RedisServer() as redis:
        for name, env_vars in sources.items():
            check(len(env_vars) >= 2, "%s: settings found: %r" % (name, env_vars))
            http, p, log = _start_with_env(env_vars, redis)
            try:
                def ready():
                    if p.poll() is not None:
                        return True
                    try:
                        return raw_http(http, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
                                        timeout=1).status == 200
                    except OSError:
                        return False
                wait_for(ready, 15, what="%s: /readyz 200" % name)
                with open(log, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
                check(p.poll() is None, "%s: spoutd exited %s:\n%s" % (name, p.returncode, text))
                check("is not a spoutd setting" not in text,
                      "%s: a setting spoutd does not know:\n%s" % (name, text))
            finally:
                if p.poll() is None:
                    os.kill(p.pid, signal.SIGTERM)
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        kill_pid(p)
            eq(p.returncode, 0, "%s: exit status after SIGTERM" % name)
