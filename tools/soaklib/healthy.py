"""Role "healthy": long-lived subscribers that must see every event on their
topics exactly once, in order (the strict half of the soak's checks).

One process holds a group of HEALTHY subscriptions on one selector. It
touches <out>.ready once every long/resume subscription has its response
head (publishing starts only then), learns from <out>.until when the load
runs (and so when the late joiners join), and after <out>.markers appears
waits, bounded by marker_wait, for the end-of-run markers on its topics.
Resume subscriptions close and come back with Last-Event-ID every 2-6 s.
Result: per connection, the ids and CRCs it received, its head times,
resumes, server-side ends, missing markers and errors.
"""
import json
import os
import random
import selectors

from .client import Received, open_sse
from .common import child_setup, matches_any, now, touch, write_json
from .topology import MARKER_TOPICS


def role_healthy(cfg):
    child_setup(cfg)
    sel = selectors.DefaultSelector()
    conns = []
    errors = []
    for spec in cfg["conns"]:
        conns.append({"spec": spec, "c": None, "rx": Received(), "heads": [], "resumes": 0,
                      "server_ends": [], "done": False, "next_resume": None,
                      "want_markers": set(t for t in MARKER_TOPICS
                                          if matches_any(spec["topics"], t)),
                      "errors": []})

    def connect(st, lei=None):
        sp = st["spec"]
        try:
            c = open_sse(cfg, sp["path"], sp["src"], http10=sp.get("http10", False), lei=lei,
                         via=sp.get("via", "header"))
        except OSError as e:
            st["errors"].append("connect: %s" % e)
            return False
        st["c"] = c
        st["t_req"] = now()
        sel.register(c, selectors.EVENT_READ, st)
        return True

    def schedule_resume(st):
        if st["spec"]["mode"] == "resume":
            st["next_resume"] = now() + random.uniform(2.0, 6.0)

    for st in conns:
        if st["spec"]["mode"] != "late":
            connect(st)
            schedule_resume(st)
    ready_written = False
    until = None          # (t_pub_start, t_until) once publishing has started
    until_file = cfg["out"] + ".until"
    markers_file = cfg["out"] + ".markers"   # written once the end markers are out
    give_up = float("inf")

    def finished(st):
        if st["done"]:
            return True
        return st["c"] is None and bool(st["errors"] or st["server_ends"])

    while now() < cfg["t_hard"] - 3:
        t = now()
        if until is None and ready_written and os.path.exists(until_file):
            with open(until_file) as f:
                u = json.load(f)
            until = (u["t_pub_start"], u["t_until"])
            for st in conns:
                sp = st["spec"]
                if sp["mode"] == "late":
                    sp["start_at"] = until[0] + sp["start_frac"] * (until[1] - until[0])
        t_until = until[1] if until else float("inf")
        # late joiners
        for st in conns:
            sp = st["spec"]
            if sp["mode"] == "late" and st["c"] is None and not st["heads"] and \
                    not st["errors"] and until is not None and t >= sp["start_at"]:
                connect(st)
        # resumes (only with at least one event seen: its id is the resume point)
        for st in conns:
            if (st["next_resume"] is not None and t >= st["next_resume"] and st["c"] is not None
                    and st["c"].head is not None and len(st["rx"].ids) and
                    t < t_until and not st["done"]):
                c = st["c"]
                sel.unregister(c)
                try:
                    c.pump()
                    st["rx"].take(c)
                except AssertionError as e:
                    st["errors"].append("protocol: %s" % e)
                if c.end is not None:
                    st["server_ends"].append(c.end)
                c.close(rst=random.random() < 0.3)
                st["c"] = None
                if c.end is not None:
                    st["next_resume"] = None
                    continue
                st["resumes"] += 1
                if connect(st, lei=st["rx"].ids[-1]):
                    schedule_resume(st)
                else:
                    st["next_resume"] = None
        for key, _ in sel.select(0.1):
            st = key.data
            c = st["c"]
            try:
                c.pump()
                if c.head is not None and len(st["heads"]) < 1 + st["resumes"]:
                    st["heads"].append(now())
                    if c.head.status != 200:
                        st["errors"].append("status %d" % c.head.status)
                st["rx"].take(c)
            except AssertionError as e:        # protocol error from the parser
                st["errors"].append("protocol: %s" % e)
                c.end = c.end or "protocol"
            if c.end is not None:
                st["server_ends"].append(c.end)
                sel.unregister(c)
                c.close()
                st["c"] = None
                st["next_resume"] = None
            if st["want_markers"] <= st["rx"].markers:
                st["done"] = True
        for st in conns:
            c = st["c"]
            if c is not None and c.head is None and now() - st["t_req"] > 30:
                st["errors"].append("no response head within 30 s")
                sel.unregister(c)
                c.close()
                st["c"] = None
        if not ready_written and all(st["heads"] for st in conns
                                     if st["spec"]["mode"] != "late"):
            touch(cfg["out"] + ".ready")
            ready_written = True
        if until is not None and now() > t_until and all(finished(st) for st in conns):
            break
        if give_up == float("inf") and os.path.exists(markers_file):
            # the markers are published: wait a bounded time for them, then
            # report whatever is still missing
            give_up = now() + cfg["marker_wait"]
        if now() > give_up:
            break
    res = []
    for st in conns:
        if st["c"] is not None:
            st["c"].close()
        rx = st["rx"]
        res.append({"path": st["spec"]["path"], "topics": st["spec"]["topics"],
                    "mode": st["spec"]["mode"], "http10": st["spec"].get("http10", False),
                    "heads": st["heads"], "ids": rx.ids.tolist(), "crcs": rx.crcs.tolist(),
                    "gaps": rx.gaps, "noid": rx.noid, "resumes": st["resumes"],
                    "server_ends": st["server_ends"],
                    "markers_missing": sorted(st["want_markers"] - rx.markers),
                    "errors": st["errors"] + errors})
    write_json(cfg["out"], {"conns": res})
