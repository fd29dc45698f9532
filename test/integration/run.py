#!/usr/bin/env python3
"""
run.py - run the spoutd loopback integration tests.

  python3 test/integration/run.py                 every test_*.py here
  python3 test/integration/run.py test_pub.py     only those files
  python3 test/integration/run.py -k heartbeat    tests whose name contains it
  SPOUTD=build/asan/spoutd python3 test/integration/run.py
  SPOUTD_ARGS="--io uring" python3 test/integration/run.py   extra flags for every broker

Prints "PASS name (x.xs)" or "FAIL name: reason" per test and ends with
exactly one line "N passed, N failed"; exit status 1 if any failed.
"""
import argparse
import glob
import importlib.util
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test exceeded its time limit")


def load(paths):
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)


def resolve(arg):
    cands = [arg, os.path.join(HERE, arg), os.path.join(HERE, arg + ".py"),
             os.path.join(HERE, "test_" + arg + ".py")]
    for c in cands:
        if os.path.isfile(c):
            return os.path.abspath(c)
    sys.exit("run.py: no test file %r" % arg)


def main():
    ap = argparse.ArgumentParser(description="spoutd integration tests")
    ap.add_argument("files", nargs="*", help="test files (default: every test_*.py here)")
    ap.add_argument("-k", dest="pattern", action="append", default=[],
                    help="run only tests whose name contains this substring")
    ap.add_argument("-v", "--verbose", action="store_true", help="full tracebacks")
    args = ap.parse_args()

    paths = [resolve(f) for f in args.files] or sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    spoutd = harness.spoutd_path()
    if not os.access(spoutd, os.X_OK):
        print("FAIL setup: spoutd binary %s is missing (set SPOUTD or make build/spoutd)" % spoutd)
        print("0 passed, 1 failed")
        return 1
    load(paths)
    # old broker logs (test/artifacts/ is git-ignored); recent ones are kept
    # in case another run is going on at the same time
    for old in glob.glob(os.path.join(harness.ARTIFACTS, "*.log")):
        try:
            if os.path.getmtime(old) < time.time() - 3600:
                os.unlink(old)
        except OSError:
            pass

    selected = []
    for name, module, fn, timeout in harness.TESTS:
        full = "%s.%s" % (module, name)
        if args.pattern and not any(p in full for p in args.pattern):
            continue
        selected.append((name, full, fn, timeout))

    signal.signal(signal.SIGALRM, _alarm)
    passed = failed = 0
    t_all = time.monotonic()
    for name, full, fn, timeout in selected:
        harness.CURRENT["name"] = name
        harness.CURRENT["logs"] = []
        t0 = time.monotonic()
        err = None
        tb = None
        signal.alarm(timeout)
        try:
            fn()
        except BaseException as e:   # noqa: B902 - report everything, incl. timeouts
            if isinstance(e, KeyboardInterrupt):
                signal.alarm(0)
                harness.cleanup_after_test()
                raise
            err = e
            tb = traceback.format_exc()
        finally:
            signal.alarm(0)
            try:
                harness.cleanup_after_test()
            except Exception as e:  # noqa: BLE001
                err = err or e
        dt = time.monotonic() - t0
        if err is None:
            passed += 1
            print("PASS %s (%.1fs)" % (name, dt), flush=True)
            continue
        failed += 1
        reason = str(err) or type(err).__name__
        if not isinstance(err, AssertionError):
            reason = "%s: %s" % (type(err).__name__, reason)
        first, _, rest = reason.partition("\n")
        print("FAIL %s: %s" % (name, first), flush=True)
        detail = []
        if rest:
            detail.append(rest)
        frames = [l.strip() for l in tb.splitlines() if l.startswith('  File "')
                  and "/run.py\"" not in l]
        own = [l for l in frames if "/harness.py\"" not in l]
        if args.verbose:
            detail.append(tb.rstrip())
        elif frames:
            # where in the test it failed, and the harness helper if deeper
            detail.append("at " + (own[-1] if own else frames[-1]))
            if own and frames[-1] != own[-1]:
                detail.append("in " + frames[-1])
        for log in harness.CURRENT["logs"]:
            try:
                with open(log, "rb") as f:
                    lines = f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                continue
            detail.append("spoutd stderr (%s), last lines:" % os.path.relpath(log, harness.ROOT))
            detail.extend("  | " + l for l in lines[-15:])
        for d in detail:
            for l in d.splitlines():
                print("    " + l, flush=True)
    print("(%.1fs total)" % (time.monotonic() - t_all), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
