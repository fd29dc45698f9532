"""The printed summary: the verdict, one line per part of the load (what
was published, what the healthy, churn, slow and stopped clients, the bad
requests and spout-bench saw), what spoutd's /metrics counted over the run,
memory and fds, and then every note and check. test_soak.py shows it from
its "=" * 72 line on when the soak fails."""
import json
import os

import harness

from . import ROOT
from .common import now
from .target import diff_labelled, mib


def print_summary(soak, R, final, stop, ok):
    """<R>: verify()'s figures ({} if the load never started), <final>:
    afterload's, <stop>: (exit status, seconds) of a broker stopped here."""
    a = soak.args
    m0, m1 = soak.m0, getattr(soak, "m1", {}) or {}
    P = print
    P("")
    P("=" * 72)
    P("spout soak: %s" % ("PASS" if ok else "FAIL"))
    P("=" * 72)
    tg = soak.tg
    P("broker       %s (pid %s%s), log %s" % (
        harness.spoutd_path() if tg.broker else "external %s:%d" % (tg.host, tg.http_port),
        tg.pid, ", " + tg.sanitizer_build() if tg.sanitizer_build() else "",
        os.path.relpath(tg.log_path, ROOT) if tg.log_path else "-"))
    P("duration     %d s of load (--duration), %.0f s in all; seed %d"
      % (a.duration, now() - soak.t_start, soak.seed))
    if not R:
        print_checks(soak, ok)
        return
    ps = R.get("pub_stats", {})
    conns = sum(s["connections"] for s in ps.values())
    P("published    %d events acknowledged (%s; end markers %d)" % (
        R["published"], ", ".join("%s %d" % kv for kv in sorted(R["by_mode"].items())),
        R.get("markers", 0)))
    P("publishers   %d connections: QUIT %d, close %d, cut mid-command %d, command after "
      "QUIT %d" % (conns, sum(s["quit"] for s in ps.values()),
                   sum(s["close"] for s in ps.values()), sum(s["half"] for s in ps.values()),
                   sum(s["after_quit"] for s in ps.values())))
    h = R["healthy"]
    P("healthy      %d subscriptions, %d deliveries checked: missing %d, duplicated %d, "
      "out of order %d, unexpected %d, wrong data %d; %d Last-Event-ID resumes (spout-gap %d)"
      % (h["conns"], h["deliveries"], h["missing"], h["dup"], h["order"], h["unexpected"],
         h["data"], h["resumes"], h["gaps"]))
    c = R["clients"].get("churn", {})
    P("churn        %d cycles %s; %d streams saw %d events (bad runs %d), %d resumes "
      "(spout-gap %d)" % (c.get("cycles", 0), json.dumps(c.get("kinds", {}), sort_keys=True),
                          c.get("streams", 0), c.get("events", 0), c.get("bad", 0),
                          c.get("resumes", 0), c.get("resume_gaps", 0)))
    for k in ("slow", "stopped"):
        s = R["clients"].get(k, {})
        P("%-12s %d processes (%d SIGKILLed), %d connections, %d closed by spoutd, %d events"
          " (bad runs %d)" % (k, s.get("processes", 0), s.get("killed", 0),
                              s.get("connections", 0), s.get("closed_by_spoutd", 0),
                              s.get("events", 0), s.get("bad", 0)))
    P("signals      %s" % ", ".join("%s %d" % kv for kv in soak.stop_stats.items()))
    if "bench" in R:
        bj = R["bench"] or {}
        P("spout-bench  exit %s: %s subscribers, %s published, %s received, lost %s, dup %s,"
          " out of order %s, slow closed %s/%s" % (
              R["bench_rc"], bj.get("connected"), bj.get("published"), bj.get("received"),
              bj.get("lost"), bj.get("duplicated"), bj.get("out_of_order"),
              bj.get("slow_closed"), bj.get("slow_connected")))
    P("bad requests %d answers: %s" % (sum(R["bad"].values()), ", ".join(
        "%s x%d" % kv for kv in sorted(R["bad"].items()))))
    P("             mismatches %d" % len(R["bad_mismatches"]))
    if m1:
        d = lambda k: int(m1.get(k, 0) - m0.get(k, 0))  # noqa: E731
        P("/metrics     connections accepted %d, streams opened %d, requests %d, bad requests "
          "%d, header timeouts %d, publishers accepted %d, publish errors %d"
          % (d("spout_connections_accepted_total"), d("spout_streams_opened_total"),
             d("spout_requests_total"), d("spout_bad_requests_total"),
             d("spout_header_timeouts_total"), d("spout_publishers_accepted_total"),
             d("spout_publish_errors_total")))
        P("             events published %d, frames delivered %d, replays %d (%d events, "
          "gaps %d), heartbeats %d" % (
              d("spout_events_published_total"), d("spout_frames_delivered_total"),
              d("spout_replays_total"), d("spout_replayed_events_total"),
              d("spout_replay_gaps_total"), d("spout_heartbeats_total")))
        P("             shed by reason %s" % diff_labelled(m1, m0,
                                                           "spout_connections_shed_total"))
        P("             closed by reason %s" % diff_labelled(
            m1, m0, "spout_connections_closed_total"))
        P("             drops by reason %s" % diff_labelled(m1, m0, "spout_event_drops_total"))
        P("             rejected %s, accept errors %d, history %d events / %.2f MiB "
          "(budget %.0f MiB), out-queue depth max %d" % (
              diff_labelled(m1, m0, "spout_connections_rejected_total"),
              d("spout_accept_errors_total"), m1.get("spout_history_events", 0),
              m1.get("spout_history_bytes", 0) / 1048576,
              m1.get("spout_history_budget_bytes", 0) / 1048576,
              m1.get("spout_out_queue_depth_max", 0)))
    P("memory       RSS baseline %s, peak %s, final %s (limit %s)" % (
        mib(soak.base_rss), mib(soak.peak_rss), mib(final.get("rss")),
        mib(final.get("rss_limit"))))
    if "alloc" in final:
        a0, a1, h1 = final["alloc"]
        P("             jemalloc allocated baseline %.2f MiB, final %.2f MiB (history %.2f MiB)"
          % (a0 / 1048576, a1 / 1048576, h1 / 1048576))
    P("fds          baseline %s, peak %s, final %s; connections open peak %d"
      % (soak.base_fds, soak.peak_fds, final.get("fds"), soak.peak_open))
    if stop:
        P("stop         SIGTERM: exit %s after %.1f s" % stop)
    print_checks(soak, ok)


def print_checks(soak, ok):
    """Every note, every check (with its detail when it failed), the verdict."""
    for n in soak.notes:
        print("note         %s" % n)
    print("checks:")
    for good, what, detail in soak.checks:
        print("  %s %s%s" % ("ok  " if good else "FAIL", what,
                             "" if good or not detail else ": " + detail))
    print("soak %s" % ("PASSED" if ok else "FAILED"), flush=True)

