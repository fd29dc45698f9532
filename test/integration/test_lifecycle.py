"""Process lifecycle: flags, environment, bind errors, signals."""
import os
import signal
import socket
import subprocess
import time

from harness import (Broker, SSEClient, check, eq, free_port, kill_pid, run_spoutd, spawn,
                     spoutd_path, test)


@test
def invalid_flags_exit_2():
    cases = [
        (["--workers", "abc"], "workers"),
        (["--workers=abc"], "workers"),
        (["--overflow", "nope"], "overflow"),
        (["--bogus"], "bogus"),
        (["--queue", "0"], "queue"),
        (["--heartbeat-ms", "-5"], "heartbeat"),
        (["--http", "not-an-address"], "http"),
        (["--write-timeout-ms"], "write-timeout-ms"),
        (["stray"], "stray"),
    ]
    for args, word in cases:
        rc, out, err = run_spoutd(args)
        eq(rc, 2, "exit status for %s" % " ".join(args))
        check(err.strip(), "%s: no message on stderr" % " ".join(args))
        check(word in err, "%s: stderr %r does not name %r" % (" ".join(args), err.strip(), word))
    # the same through the environment
    rc, out, err = run_spoutd([], {"SPOUT_WORKERS": "abc"})
    eq(rc, 2, "exit status for SPOUT_WORKERS=abc")
    check("SPOUT_WORKERS" in err, "stderr %r does not name SPOUT_WORKERS" % err.strip())


@test
def help_and_version_exit_0():
    rc, out, err = run_spoutd(["--help"])
    eq(rc, 0, "--help exit status")
    check("usage" in out.lower() and "--heartbeat-ms" in out and "SPOUT_HEARTBEAT_MS" in out,
          "--help output: %r" % out[:300])
    rc, out, err = run_spoutd(["--version"])
    eq(rc, 0, "--version exit status")
    check(out.startswith("spoutd ") and any(ch.isdigit() for ch in out),
          "--version output %r" % out)


def _bind_conflict(which):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(16)
    port = holder.getsockname()[1]
    try:
        other = free_port()
        if which == "http":
            argv = ["--http", "127.0.0.1:%d" % port, "--pub", "127.0.0.1:%d" % other]
        else:
            argv = ["--http", "127.0.0.1:%d" % other, "--pub", "127.0.0.1:%d" % port]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPOUT_")}
        p = spawn([spoutd_path()] + argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, env=env)
        try:
            out, err = p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            kill_pid(p)
            raise AssertionError("spoutd kept running with its %s port in use" % which)
        err = err.decode("utf-8", "replace")
        check(p.returncode != 0, "exit status %d with the %s port in use" % (p.returncode, which))
        check(p.returncode > 0, "killed by signal %d with the %s port in use"
              % (-p.returncode, which))
        check(str(port) in err and "in use" in err.lower(),
              "stderr does not clearly say port %d is in use: %r" % (port, err.strip()))
    finally:
        holder.close()


@test
def bind_conflict_http():
    _bind_conflict("http")


@test
def bind_conflict_pub():
    _bind_conflict("pub")


def _graceful(sig):
    with Broker() as b:
        s11 = [b.sse("/events/bye%d" % k) for k in range(3)]
        s10 = b.sse("/events/bye0", http10=True)
        for c in s11 + [s10]:
            eq(c.wait_head().status, 200, "stream status")
        with b.publisher() as p:
            i = p.pub("bye0", "last words")
        for c in (s11[0], s10):
            eq(c.expect_events(1)[0].id, str(i), "event before shutdown")
        # a publisher and a half-sent request are open too
        pub = b.publisher()
        half = socket.create_connection(("127.0.0.1", b.http_port), timeout=3)
        half.sendall(b"GET /events/x HTTP/1.1\r\n")
        time.sleep(0.1)
        rc, dt = b.stop(sig, timeout=5)
        eq(rc, 0, "exit status after %s" % signal.Signals(sig).name)
        check(dt <= 2.0, "exit took %.2fs after %s (want <= 2s)" % (dt, signal.Signals(sig).name))
        for k, c in enumerate(s11):
            end = c.wait_end(2)
            eq(end, "clean", "HTTP/1.1 stream %d end after %s (want the terminating chunk)"
               % (k, signal.Signals(sig).name))
        eq(s10.wait_end(2), "eof", "HTTP/1.0 stream end")
        eq(s10.take_events(), [], "HTTP/1.0 stream: no extra events")
        for c in s11 + [s10]:
            c.close()
        pub.close()
        half.close()
        log = b.log_text()
        check("shutting down" in log or "stop" in log.lower(), "no shutdown log line")


@test
def sigterm_ends_streams_cleanly():
    _graceful(signal.SIGTERM)


@test
def sigint_ends_streams_cleanly():
    _graceful(signal.SIGINT)


@test
def sigterm_with_busy_streams():
    """SIGTERM while a subscriber is blocked (not reading) and events are
    flowing still exits 0 within 2 s."""
    with Broker() as b:
        slow = SSEClient(b.http_port, "/events/busy", rcvbuf=4096)
        fast = b.sse("/events/busy")
        slow.wait_head()
        fast.wait_head()
        with b.publisher() as p:
            for _ in range(20):
                p.pub_many([("busy", "x" * 1000)] * 100)
                fast.read_events(10 ** 6, 0.01)
        rc, dt = b.stop(signal.SIGTERM, timeout=5)
        eq(rc, 0, "exit status")
        check(dt <= 2.0, "exit took %.2fs" % dt)
        slow.close()
        fast.close()


@test
def env_heartbeat():
    with Broker(env={"SPOUT_HEARTBEAT_MS": "200"}) as b:
        c = b.sse("/events/envq")
        c.wait_head()
        c.read_events(1, 1.3)
        check(c.ncomments - 1 >= 3, "SPOUT_HEARTBEAT_MS=200: %d heartbeats in 1.3s"
              % (c.ncomments - 1))
        c.close()
    # a flag wins over the environment
    with Broker("--heartbeat-ms", "60000", env={"SPOUT_HEARTBEAT_MS": "200"}) as b:
        c = b.sse("/events/envq")
        c.wait_head()
        c.read_events(1, 0.8)
        eq(c.ncomments - 1, 0, "heartbeats with --heartbeat-ms 60000 over SPOUT_HEARTBEAT_MS=200")
        c.close()


@test
def env_cors_and_max_topics():
    with Broker(env={"SPOUT_CORS_ORIGIN": "*", "SPOUT_MAX_TOPICS": "2"}) as b:
        c = b.sse("/events/a?topic=b")
        h = c.wait_head()
        eq(h.get("access-control-allow-origin"), "*", "ACAO from SPOUT_CORS_ORIGIN")
        c.close()
        r = b.http(b"GET /events/a?topic=b&topic=c HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(r.status, 400, "3 topics with SPOUT_MAX_TOPICS=2")
