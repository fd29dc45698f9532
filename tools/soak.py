#!/usr/bin/env python3
"""
soak.py - mixed-load soak test of spoutd (issue 7).

    tools/soak.py --duration 900                  start build/spoutd ($SPOUTD) and soak it
    tools/soak.py --duration 60 --spoutd build/asan/spoutd
    tools/soak.py --http 127.0.0.1:8080 --pub 127.0.0.1:7400 [--pid N] [--log F]
                                                  soak a broker that is already running
                                                  (start it with the flags in BROKER_FLAGS
                                                  in soaklib/target.py, or the shed check
                                                  may not hold)

Python 3 standard library only (plus the integration harness's helpers and,
when it is built, build/spout-bench). For --duration seconds it runs, all at
once, each part in its own process(es):

  healthy    long-lived subscribers on single topics, several topics, the
             patterns soak.* / soak.> / soak.*.x, over HTTP/1.1 and 1.0, two of
             them reconnecting with Last-Event-ID (header and ?lastEventId=),
             two joining mid-run; source addresses 127.0.0.2-9
  publishers PUB one at a time, EVENT (typed, multi-line), pipelined batches
             with bad commands mixed in, and a 1 KB "heavy" stream; steady
             bounded rates; they reconnect periodically (QUIT, close, close
             in the middle of a command, commands pipelined after QUIT)
  churn      subscribe/unsubscribe cycles: abort before the response head
             (FIN, RST, half a request, nothing sent), mid-stream (FIN, RST),
             HTTP/1.0, Last-Event-ID resumes; 127.0.0.10-29
  slow       tiny receive buffers read 256 bytes at a time (shed by the write
             timeout), and readers that keep reading but lag behind their
             stream (shed by the queue bound)
  stopped    client processes that get SIGSTOP, then SIGCONT or SIGKILL
  bad        malformed HTTP, oversized heads, bad topics, slow heads (408),
             bad publisher commands: each answer is checked and counted
  bench      build/spout-bench: checked subscribers (lost/dup/order) plus
             subscribers that never read (skipped with --no-bench)

Then it stops the load, waits (bounded) for the connections to close and
asserts:

  - every healthy subscriber received exactly the events published on its
    topics (the ids the publishers got back in "OK <id>", which the SSE id:
    field carries), once each, in order, with the published type and data;
    a subscriber that joined mid-run got a contiguous suffix that includes
    every event sent after its response head; every resume was exact (no
    spout-gap, nothing missing or repeated);
  - churn, slow and stopped clients only ever saw contiguous runs of their
    topics' events (a shed ends a stream, it never punches holes), and exact
    resumes when they resumed;
  - events whose command was cut off, or pipelined after QUIT, never appear;
  - every bad request got the answer it should (HTTP status / ERR reason);
  - spout-bench's checked subscribers lost nothing (exit status 0);
  - slow/stopped clients were shed (the load really exercised shedding);
  - open fds return exactly to the baseline, no connection, publisher or
    topic is left, and RSS returns to within the tolerance in
    soaklib/afterload.py;
  - spoutd is still alive, answers /readyz 200, and its log has no sanitizer
    report (also after it exits, when soak.py started it: LeakSanitizer).

It prints a summary and exits 0 only if every assertion held (1 if one
failed, 2 on a usage error). Every loop is bounded in count and time, each
child process has its own deadline and dies with this one, and the whole run
stops itself at duration + HARD_MARGIN seconds. Only processes started here
are signalled, by PID.

This file is the entry point (command line, signals, hard deadline); the
code is in tools/soaklib/, one module per concern (its __init__ lists them).
A role process is this same script run with --role NAME --config FILE.
"""
import argparse
import json
import os
import signal
import sys

from soaklib import ROOT
from soaklib.badreq import role_bad
from soaklib.churn import role_churn
from soaklib.common import raise_nofile
from soaklib.healthy import role_healthy
from soaklib.orchestrate import HARD_MARGIN, Soak
from soaklib.publisher import role_publisher
from soaklib.readers import role_readers

ROLES = {"healthy": role_healthy, "publisher": role_publisher, "churn": role_churn,
         "readers": role_readers, "bad": role_bad}


def main():
    ap = argparse.ArgumentParser(description="spoutd soak test (see the module docstring)")
    ap.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    ap.add_argument("--spoutd", help="spoutd binary to start (default $SPOUTD or build/spoutd)")
    ap.add_argument("--spoutd-arg", action="append", default=[],
                    help="extra flag for the spoutd soak.py starts, repeatable; write "
                         "--spoutd-arg=--io --spoutd-arg=uring")
    ap.add_argument("--http", help="soak a running broker: its HTTP HOST:PORT")
    ap.add_argument("--pub", help="... and its publisher HOST:PORT")
    ap.add_argument("--pid", type=int, help="... and its pid (RSS/fds from /proc, else /metrics)")
    ap.add_argument("--log", help="... and its log file (scanned for sanitizer reports)")
    ap.add_argument("--bench", default=os.environ.get("SPOUT_BENCH",
                                                      os.path.join(ROOT, "build", "spout-bench")),
                    help="spout-bench binary (default $SPOUT_BENCH or build/spout-bench)")
    ap.add_argument("--no-bench", action="store_true", help="leave spout-bench out")
    ap.add_argument("--rate", type=float, default=1.0, help="scale every load rate (default 1)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--workdir", default=None, help="where child results go (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep child results even on success")
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role:
        with open(a.config) as f:
            cfg = json.load(f)
        ROLES[a.role](cfg)
        return 0
    if bool(a.http) != bool(a.pub):
        ap.error("--http and --pub go together")
    if a.pid:
        try:
            with open("/proc/%d/comm" % a.pid) as f:
                comm = f.read().strip()
        except OSError:
            ap.error("--pid %d: no such process" % a.pid)
        if not comm.startswith("spoutd"):
            ap.error("--pid %d is %r, not spoutd" % (a.pid, comm))
    if a.duration < 5:
        ap.error("--duration must be at least 5 s")
    if a.spoutd:
        os.environ["SPOUTD"] = a.spoutd
    if a.no_bench:
        a.bench = None
    raise_nofile()
    # the hard deadline for the whole run: duration + a fixed margin
    def hard_stop(signum, frame):
        raise TimeoutError("hard deadline (duration + %d s) reached" % HARD_MARGIN)

    def terminated(signum, frame):
        raise TimeoutError("stopped by %s" % signal.Signals(signum).name)
    signal.signal(signal.SIGALRM, hard_stop)
    signal.signal(signal.SIGTERM, terminated)
    signal.alarm(int(a.duration + HARD_MARGIN))
    s = Soak(a, os.path.abspath(__file__))
    try:
        rc = s.run()
    except (TimeoutError, KeyboardInterrupt, Exception) as e:   # noqa: B902
        import traceback
        traceback.print_exc()
        print("soak: aborted: %s: %s" % (type(e).__name__, e))
        rc = 1
    finally:
        signal.alarm(0)
        s.kill_all()
    return rc


if __name__ == "__main__":
    sys.exit(main())
