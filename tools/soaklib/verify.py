"""What the clients saw, checked against what was published.

The publishers' results (plus the end markers) say which ids the broker
acknowledged, on which topic, with which type and data; Published indexes
them. Then:

  healthy          exactly once, in order, nothing missing, right type and
                   data; a late joiner from some point on, a long-lived one
                   from the start; every resume exact; every marker seen
  churn, slow,     contiguous runs of their topics' events (per topic after
  stopped          a spout-gap), resumes exact, no errors
  bad requests     every one got the answer it should
  spout-bench      its checked subscribers lost nothing (exit 0)
  shedding         spout_connections_shed_total moved

verify(soak) records these checks on the Soak and returns R, the figures
the summary prints."""
import os

from .common import matches_any, read_json
from .target import diff_labelled
from .topology import CLIENT_PATHS


class Published:
    """Every acknowledged event, [id, topic, type, crc, t_send], by id and
    by topic (in id order), and what a subscription to some topics must see."""

    def __init__(self, events):
        self.events = events
        self.by_topic = {}
        for e in sorted(events.values()):
            self.by_topic.setdefault(e[1], []).append(e)
        self._expected = {}

    def expected(self, topics):
        """(events on <topics> in id order, {id: index in that list})."""
        key = tuple(topics)
        if key not in self._expected:
            lst = []
            for t, evs in self.by_topic.items():
                if matches_any(topics, t):
                    lst += evs
            lst.sort()
            self._expected[key] = (lst, {e[0]: k for k, e in enumerate(lst)})
        return self._expected[key]


def verify(soak):
    R = {"published": 0, "by_mode": {}, "pub_stats": {}, "healthy": {}, "clients": {}}
    pub = _publishers(soak, R)
    _healthy(soak, pub, R)
    _churn(soak, pub, R)
    sheds_seen = _slow_and_stopped(soak, pub, R)
    _bad_requests(soak, R)
    sheds_seen += _bench(soak, R)
    # ---- the load exercised shedding (spoutd's own count)
    if soak.m1:
        sh = diff_labelled(soak.m1, soak.m0, "spout_connections_shed_total")
        soak.check(sum(sh.values()) >= 1,
                   "slow/stopped clients were shed (spout_connections_shed_total moved)",
                   "sheds %s, clients saw %d server closes" % (sh, sheds_seen))
    return R


def _publishers(soak, R):
    """Collect every acknowledged event; check the publishers ran cleanly."""
    events = {}
    pub_errors = []
    for p in soak.pubs:
        r = p.result()
        if r is None:
            pub_errors.append(p.no_result())
            continue
        pub_errors += ["%s: %s" % (p.name, e) for e in r["errors"]]
        R["by_mode"][r["mode"]] = len(r["events"])
        R["pub_stats"][r["name"]] = r["stats"]
        for e in r["events"]:
            if e[0] in events:
                pub_errors.append("id %d returned twice" % e[0])
            events[e[0]] = e
    for e in getattr(soak, "markers", []):
        events[e[0]] = e
    R["published"] = len(events)
    R["markers"] = len(getattr(soak, "markers", []))
    soak.check(not pub_errors, "publishers ran without errors", "; ".join(pub_errors[:5]))
    return Published(events)


def _healthy(soak, pub, R):
    """Healthy subscribers: exactly once, in order, nothing missing."""
    events = pub.events
    hsum = {"conns": 0, "deliveries": 0, "missing": 0, "dup": 0, "order": 0, "unexpected": 0,
            "data": 0, "resumes": 0, "gaps": 0, "server_ends": 0}
    hfail = []
    for h in soak.healthy:
        r = h.result()
        if r is None:
            hfail.append(h.no_result())
            continue
        for c in r["conns"]:
            hsum["conns"] += 1
            what = "%s%s [%s]" % (c["path"], " (HTTP/1.0)" if c["http10"] else "", c["mode"])
            lst, pos = pub.expected(c["topics"])
            got = c["ids"]
            hsum["deliveries"] += len(got)
            hsum["resumes"] += c["resumes"]
            hsum["gaps"] += len(c["gaps"])
            hsum["server_ends"] += len(c["server_ends"])
            probs = []
            if c["errors"]:
                probs.append("errors %s" % c["errors"][:3])
            if not c["heads"]:
                probs.append("never got a response head")
                hfail.append("%s: %s" % (what, "; ".join(probs)))
                continue
            t_head = c["heads"][0]
            must = next((k for k, e in enumerate(lst) if e[4] > t_head), len(lst))
            unexpected = [i for i in got if i not in pos]
            dup = len(got) - len(set(got))
            order = sum(1 for k in range(1, len(got)) if got[k] <= got[k - 1])
            known = [i for i in got if i in pos]
            start = min([pos[i] for i in known] + [must])
            want = [e[0] for e in lst[start:]]
            missing = sorted(set(want) - set(got))
            data = sum(1 for i, cr in zip(got, c["crcs"]) if i in events and
                       events[i][3] != cr)
            hsum["missing"] += len(missing)
            hsum["dup"] += dup
            hsum["order"] += order
            hsum["unexpected"] += len(unexpected)
            hsum["data"] += data
            if missing:
                probs.append("%d missing (first %s)" % (len(missing), missing[:3]))
            if dup:
                probs.append("%d duplicates" % dup)
            if order:
                probs.append("%d out of order" % order)
            if unexpected:
                probs.append("%d unexpected ids (first %s)" % (len(unexpected),
                                                                unexpected[:3]))
            if data:
                probs.append("%d with wrong type/data" % data)
            if c["gaps"]:
                probs.append("spout-gap on resume: %s" % c["gaps"][:2])
            if c["server_ends"]:
                probs.append("stream ended by the server: %s" % c["server_ends"][:3])
            if c["noid"]:
                probs.append("%d events without id" % c["noid"])
            if c["markers_missing"]:
                probs.append("end markers not received: %s" % c["markers_missing"])
            if c["mode"] in ("long", "resume") and start != 0:
                probs.append("long-lived subscriber missed the start (from index %d)" % start)
            if not got:
                probs.append("received nothing")
            if probs:
                hfail.append("%s: %s" % (what, "; ".join(probs)))
    R["healthy"] = hsum
    soak.check(not hfail, "healthy subscribers received every event exactly once, in order",
               "; ".join(hfail[:6]))


# ---- churn / slow / stopped: contiguous runs, exact resumes

def _per_topic_runs(rec, pos, pub):
    """Problems with a record that saw a spout-gap: each topic's events must
    still be a contiguous run of what was published on it."""
    p = []
    ids = rec["ids"]
    if any(ids[k] >= ids[k + 1] for k in range(len(ids) - 1)):
        p.append("ids not increasing")
    if any(i not in pos for i in ids):
        p.append("ids not published on its topics")
        return p
    per = {}
    for i, cr in zip(ids, rec["crcs"]):
        per.setdefault(pub.events[i][1], []).append((i, cr))
    for t, lst in per.items():
        tl = pub.by_topic[t]
        tpos = {e[0]: k for k, e in enumerate(tl)}
        k0 = tpos[lst[0][0]]
        want = tl[k0:k0 + len(lst)]
        if [e[0] for e in want] != [x[0] for x in lst]:
            p.append("hole in topic %s after a spout-gap" % t)
        elif any(e[3] != x[1] for e, x in zip(want, lst)):
            p.append("wrong type/data")
    return p


def _slices(name, records, pub):
    """Check client_records whose events must form contiguous runs. Returns
    (records, bad records, events, ended by the server, problems)."""
    n = bad_n = evs = ends = 0
    probs = []
    for rec in records:
        n += 1
        evs += rec["n"]
        if rec["end"] is not None:
            ends += 1
        if rec["n"] == 0:
            continue
        lst, pos = pub.expected(CLIENT_PATHS[rec["p"]][1])
        p = []
        if rec["first"] not in pos or rec["last"] not in pos:
            p.append("ids not published on its topics (%s..%s)" % (rec["first"],
                                                                   rec["last"]))
        elif rec.get("ids") is not None:
            p += _per_topic_runs(rec, pos, pub)
        else:
            i, j = pos[rec["first"]], pos[rec["last"]]
            if not rec["incr"]:
                p.append("ids not increasing")
            elif j - i + 1 != rec["n"]:
                p.append("%d events where %d were published (hole)" % (rec["n"],
                                                                        j - i + 1))
            elif sum(e[3] for e in lst[i:j + 1]) & 0xFFFFFFFF != rec["crcsum"]:
                p.append("wrong type/data")
            lei = rec.get("lei")
            if lei is not None and not rec["gaps"] and lei in pos:
                if i != pos[lei] + 1:
                    p.append("resume after %d started at index %+d" % (
                        lei, i - pos[lei] - 1))
        if rec["noid"]:
            p.append("%d events without id" % rec["noid"])
        if p:
            bad_n += 1
            probs.append("%s %s: %s" % (name, CLIENT_PATHS[rec["p"]][0], "; ".join(p)))
    return n, bad_n, evs, ends, probs


def _churn(soak, pub, R):
    cr = soak.churn.result()
    if cr is None:
        soak.check(False, "churn client produced its result", soak.churn.stderr_line())
        cr = {"stats": {}, "cycles": 0, "records": [], "errors": []}
    n, bad_n, evs, ends, probs = _slices("churn", cr["records"], pub)
    resumes = sum(1 for r in cr["records"] if r.get("lei") is not None)
    rgaps = sum(1 for r in cr["records"] if r.get("lei") is not None and r["gaps"])
    R["clients"]["churn"] = {"cycles": cr["cycles"], "kinds": cr["stats"], "streams": n,
                             "events": evs, "bad": bad_n, "resumes": resumes,
                             "resume_gaps": rgaps, "server_ends": ends}
    soak.check(not cr["errors"], "churn clients: every stream got its 200 head",
               "; ".join(cr["errors"][:5]))
    soak.check(not probs, "churn streams saw contiguous runs of events, resumes exact",
               "; ".join(probs[:5]))


def _slow_and_stopped(soak, pub, R):
    """Returns how many of their streams spoutd closed."""
    sheds_seen = 0
    stopped_children = [c for c in soak.children if c.name.startswith("stopped")]
    for name, chs in (("slow", [soak.slowp]), ("stopped", stopped_children)):
        recs, errs, opened, closed = [], [], 0, 0
        for c in chs:
            r = c.result()
            if r is not None and r.get("partial") and not c.killed:
                errs.append("%s: only a partial result (status %s)" % (c.name,
                                                                       c.proc.returncode))
            if r is None:
                if not c.killed:
                    errs.append("%s: no result (status %s)" % (c.name, c.proc.returncode))
                continue
            recs += r["records"]
            errs += r["errors"]
            opened += r["opened"]
            closed += r["server_closed"]
        n, bad_n, evs, ends, probs = _slices(name, recs, pub)
        R["clients"][name] = {"processes": len(chs), "killed": sum(1 for c in chs if c.killed),
                              "connections": opened, "closed_by_spoutd": closed,
                              "events": evs, "bad": bad_n}
        sheds_seen += closed
        soak.check(not errs, "%s clients ran without errors" % name, "; ".join(errs[:5]))
        soak.check(not probs, "%s clients saw contiguous runs of events" % name,
                   "; ".join(probs[:5]))
    return sheds_seen


def _bad_requests(soak, R):
    """The bad role's answers plus the bad commands the pipelining publisher
    mixed in: every one must have got the answer it should."""
    bad = {}
    bad_mismatch = []
    for s in R["pub_stats"].values():
        for k, v in s["bad"].items():
            bad["pipelined " + k] = bad.get("pipelined " + k, 0) + v
        bad_mismatch += s["bad_mismatch"]
    br = soak.bad.result()
    if br is None:
        soak.check(False, "bad-request client produced its result", soak.bad.stderr_line())
        br = {"answers": {}, "mismatches": [], "errors": [], "sent": 0}
    for k, v in br["answers"].items():
        bad[k] = bad.get(k, 0) + v
    R["bad"] = bad
    mism = br["mismatches"] + [["pipelined", w, g] for w, g in bad_mismatch]
    R["bad_mismatches"] = mism
    soak.check(not mism, "every bad request got the answer it should",
               "; ".join("%s: want %r got %r" % tuple(x) for x in mism[:5]))
    soak.check(not br["errors"], "bad-request client ran without errors",
               "; ".join(br["errors"][:5]))


def _bench(soak, R):
    """spout-bench's verdict, if it ran. Returns the slow subscribers it saw
    closed."""
    if soak.bench is None:
        return 0
    rc = soak.bench.returncode
    bj = read_json(os.path.join(soak.workdir, "bench.json"))
    R["bench"] = bj
    R["bench_rc"] = rc
    detail = ""
    if bj:
        detail = "lost %s dup %s order %s failed %s dropped %s" % (
            bj.get("lost"), bj.get("duplicated"), bj.get("out_of_order"),
            bj.get("failed"), bj.get("dropped"))
    else:
        try:
            with open(os.path.join(soak.workdir, "bench.stderr"), "rb") as f:
                detail = f.read().decode("utf-8", "replace")[-300:]
        except OSError:
            pass
    soak.check(rc == 0, "spout-bench checked subscribers lost nothing (exit 0)",
               "exit %s %s" % (rc, detail))
    return bj.get("slow_closed", 0) if bj else 0
