"""The broker after the load: wait (bounded) for everything the load opened
to close, then check that open fds are back to the baseline exactly, no
connection, publisher or topic is left, RSS and live allocations are back
within tolerance, /readyz answers 200 and the log has no sanitizer report;
finally stop a broker soak.py started (exit 0 on SIGTERM, no LeakSanitizer
report). Every function takes the Soak whose checks it records."""
import os
import signal
import time

import harness

from .common import now
from .target import mib, stable_fds

SETTLE_S = 30                 # bound on waiting for fds/connections to settle

# RSS tolerance. jemalloc builds: final RSS <= baseline + history budget +
# RSS_SLACK_MB, and the application's live allocations (jemalloc's
# stats.allocated) <= baseline + what history reports holding + ALLOC_SLACK_MB.
#
# Why this is fair: the baseline is taken right after /readyz turns 200, before
# any connection, so the final figure legitimately includes
#  (a) history: up to --history (100) events per topic, bounded in bytes by
#      --history-bytes (4 MiB here; spout_history_budget_bytes); events stay
#      for --history-ttl (1 h), i.e. to the end of any soak;
#  (b) pages jemalloc keeps after frees: dirty pages decay only as the arenas
#      see more activity, so after the load stops they mostly stay resident;
#  (c) per-thread caches, arenas, connection and topic tables grown to the
#      peak of the run.
# (b) and (c) are bounded by the peak working set, which the soak keeps small
# and constant (~120 connections; a slow consumer pins at most --queue 64
# events plus its socket buffers), not by the duration or the number of
# connections served: measured here, final - baseline is 2-3 MiB after 60 s.
# RSS_SLACK_MB (24) leaves room for allocator noise; a leak of ~1.5 KB per
# connection over a 15-minute run (~16k HTTP connections) would exceed it.
# The allocated-bytes check is the sharp one: it does not depend on page
# retention, and 2 MiB of slack (thread caches hold freed objects that still
# count as allocated) catches a leak of ~150 bytes per connection in 15 min.
#
# ASan builds (no jemalloc metrics): ASan's quarantine keeps freed memory
# (quarantine_size_mb, 256 MiB unless ASAN_OPTIONS says otherwise), so the RSS
# bound there is the quarantine plus the same terms; leaks are left to
# LeakSanitizer, which runs when soak.py stops the broker (its report fails
# the run). TSan builds: its shadow and race-detection metadata take several
# times the application memory they cover (measured: +14 MiB RSS in 60 s
# against +2.5 MiB with jemalloc), so the slack is TSAN_SLACK_FACTOR times
# larger; the RSS bound there only catches gross growth.
RSS_SLACK_MB = 24
ALLOC_SLACK_MB = 2
ASAN_QUARANTINE_MB = 256
TSAN_SLACK_FACTOR = 4


def settle(soak):
    """Wait (bounded) until everything the load opened has closed. Returns
    (fds, connections open, publishers open, topics, metrics)."""
    tg = soak.tg
    base_open = soak.m0.get("spout_connections_open", 0)
    deadline = now() + SETTLE_S * soak.slow
    state = None
    while True:
        try:
            m = tg.metrics()
            n = stable_fds(tg, tries=6)
            state = (n, m.get("spout_connections_open"), m.get("spout_publishers_open"),
                     m.get("spout_topics"), m)
            if n == soak.base_fds and state[1] <= base_open and state[2] == 0 and \
                    state[3] == 0:
                return state
        except (AssertionError, OSError) as e:
            state = (None, None, None, None, {})
            soak.notes.append("settle scrape: %s" % e)
        if now() > deadline:
            return state
        time.sleep(0.25)


def check_broker(soak):
    """The checks on the broker's state after the load. Sets soak.m1 (the
    final metrics, {} if spoutd died). Returns (alive, final), final holding
    the figures the summary prints."""
    tg = soak.tg
    alive = tg.alive()
    soak.check(alive, "spoutd alive after the load")
    final = {}
    if alive:
        fds, opn, pubs, topics, m1 = settle(soak)
        final.update(fds=fds, open=opn, pubs=pubs, topics=topics)
        soak.m1 = m1
        soak.check(fds == soak.base_fds, "open fds back to the baseline exactly",
                   "baseline %s, final %s" % (soak.base_fds, fds))
        soak.check(opn is not None and opn <= soak.m0.get("spout_connections_open", 0),
                   "spout_connections_open back to the baseline",
                   "baseline %s, final %s" % (soak.m0.get("spout_connections_open"), opn))
        soak.check(pubs == 0, "no publisher connection left", "spout_publishers_open %s" % pubs)
        soak.check(topics == 0, "no topic with subscribers left", "spout_topics %s" % topics)
        check_memory(soak, final)
        r = harness.raw_http(tg.http_port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 10,
                             host=tg.host)
        soak.check(r.status == 200, "GET /readyz answers 200 after the soak", r.describe())
    else:
        soak.m1 = {}
    rep = tg.sanitizer_report()
    soak.check(rep is None, "no sanitizer report in the spoutd log (during the run)", rep or "")
    return alive, final


def check_memory(soak, final):
    """RSS (polled, bounded) and jemalloc's live allocations against the
    tolerances above; adds rss, rss_limit and alloc to <final>."""
    tg = soak.tg
    m0, m1 = soak.m0, soak.m1
    san = tg.sanitizer_build()
    hist_budget_kb = int(m1.get("spout_history_budget_bytes", 64 << 20)) // 1024
    quarantine = ASAN_QUARANTINE_MB
    for kv in os.environ.get("ASAN_OPTIONS", "").split(":"):
        if kv.startswith("quarantine_size_mb="):
            try:
                quarantine = max(0, int(kv.split("=", 1)[1]))
            except ValueError:
                pass
    slack_kb = RSS_SLACK_MB * 1024 + (quarantine * 1024 if san == "asan" else 0)
    if san == "tsan":
        slack_kb *= TSAN_SLACK_FACTOR
    limit = (soak.base_rss or 0) + hist_budget_kb + slack_kb
    # RSS does not fall at once after a burst of frees; poll (bounded) for
    # it to come within the bound rather than judging the first sample
    deadline = now() + 10 * soak.slow
    rss = tg.rss_kb()
    while rss is not None and rss > limit and now() < deadline:
        time.sleep(0.5)
        rss = tg.rss_kb()
    final["rss"] = rss
    final["rss_limit"] = limit
    soak.check(rss is not None and rss <= limit, "RSS back within tolerance of the baseline",
               "baseline %s, final %s, limit %s (= baseline + history budget %s + slack %s)"
               % (mib(soak.base_rss), mib(rss), mib(limit), mib(hist_budget_kb),
                  mib(slack_kb)))
    if "spout_jemalloc_allocated_bytes" in m0 and "spout_jemalloc_allocated_bytes" in m1:
        a0 = m0["spout_jemalloc_allocated_bytes"]
        a1 = m1["spout_jemalloc_allocated_bytes"]
        h1 = m1.get("spout_history_bytes", 0)
        lim = a0 + h1 + ALLOC_SLACK_MB * (1 << 20)
        final["alloc"] = (a0, a1, h1)
        soak.check(a1 <= lim, "live allocations back to the baseline plus history",
                   "jemalloc allocated: baseline %.2f MiB, final %.2f MiB, history holds "
                   "%.2f MiB, limit %.2f MiB" % (a0 / 1048576, a1 / 1048576, h1 / 1048576,
                                                lim / 1048576))
    elif not san:
        soak.notes.append("no jemalloc metrics: allocated-bytes check skipped")


def stop_broker(soak, alive):
    """Stop a broker soak.py started: exit 0, and nothing from LeakSanitizer.
    Returns (exit status, seconds) or None (external, or already dead)."""
    tg = soak.tg
    stop = None
    if tg.broker is not None and alive:
        try:
            rc, dt = tg.broker.stop(signal.SIGTERM, timeout=30 * soak.slow)
            stop = (rc, dt)
            soak.check(rc == 0, "spoutd exits 0 on SIGTERM", "exit %s" % rc)
        except AssertionError as e:
            soak.check(False, "spoutd exits on SIGTERM", str(e))
        rep = tg.sanitizer_report()
        soak.check(rep is None, "no sanitizer report in the spoutd log (at exit)", rep or "")
    elif tg.broker is not None:
        tg.broker.kill()
    return stop
