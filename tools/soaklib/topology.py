"""The load mix: which topics exist, who subscribes to what, and which
paths the churn, slow and stopped clients use. Every role and the final
checks read these tables; changing one changes what the soak exercises."""

HEALTHY_TOPICS = ["soak.t%d" % i for i in range(6)]
HEAVY = "soak.heavy"          # 1 KB events at a steady rate: fills slow clients
DEEP = "soak.deep.x"          # two segments below soak: soak.* must not match it
NOISE = ["other.n%d" % i for i in range(8)]   # nobody healthy subscribes
MARKER_TOPICS = HEALTHY_TOPICS + [HEAVY, DEEP]
MARK = "__END__ "             # the end-of-run marker payload prefix

# Healthy subscriptions: (path, topics/patterns, mode, extra). mode: long =
# subscribed before the first publish, to the end; resume = like long, but it
# closes and resumes with Last-Event-ID every few seconds; late = joins mid-run.
HEALTHY = []
for _t in HEALTHY_TOPICS:
    HEALTHY.append(("/events/" + _t, [_t], "long", {}))
    HEALTHY.append(("/events/" + _t, [_t], "long", {"http10": True}))
HEALTHY += [
    ("/events?topic=soak.t0&topic=soak.t3&topic=soak.heavy",
     ["soak.t0", "soak.t3", HEAVY], "long", {}),
    ("/events/soak.*", ["soak.*"], "long", {}),
    ("/events?topic=soak.%3E", ["soak.>"], "long", {}),
    ("/events?topic=soak.t1&topic=soak.*", ["soak.t1", "soak.*"], "long", {}),
    ("/events/" + HEAVY, [HEAVY], "long", {}),
    ("/events/" + HEAVY, [HEAVY], "long", {"http10": True}),
    ("/events?topic=soak.t2&topic=soak.t4", ["soak.t2", "soak.t4"], "resume", {"via": "header"}),
    ("/events?topic=soak.t5&topic=" + DEEP, ["soak.t5", DEEP], "resume", {"via": "query"}),
    ("/events?topic=soak.*.x&topic=soak.t3", ["soak.*.x", "soak.t3"], "resume",
     {"via": "header"}),
    ("/events/soak.t1", ["soak.t1"], "late", {"start_frac": 0.3}),
    ("/events?topic=soak.*", ["soak.*"], "late", {"start_frac": 0.6}),
]

# Paths churn/slow/stopped clients use; topics None = an idle topic nobody
# publishes on (any event there is unexpected).
CLIENT_PATHS = [
    ("/events/soak.t0", ["soak.t0"]),
    ("/events/soak.t3", ["soak.t3"]),
    ("/events?topic=soak.t1&topic=soak.t5", ["soak.t1", "soak.t5"]),
    ("/events/soak.*", ["soak.*"]),
    ("/events/" + HEAVY, [HEAVY]),
    ("/events?topic=" + HEAVY + "&topic=soak.t2", [HEAVY, "soak.t2"]),
    ("/events/soak.t4", ["soak.t4"]),
    ("/events?topic=soak.t0&topic=soak.%3E", ["soak.t0", "soak.>"]),
]
for _k in range(20):
    CLIENT_PATHS.append(("/events/churn.c%d" % _k, ["churn.c%d" % _k]))
CHURN_PATHS = list(range(len(CLIENT_PATHS)))           # all of them
# slow readers: (path, SO_RCVBUF, bytes per read, seconds between reads).
# Trickle readers (tiny buffer, 256 B at a time) make no write progress that
# spoutd can see for seconds at a time: --write-timeout-ms sheds them. Lagging
# readers read 30 KB once a second, steadily but slower than their stream
# (soak.> ~55 KB/s, heavy 40 KB/s): their queue passes --queue (overflow).
SLOW_SLOTS = [(4, 2048, 256, 0.2), (5, 2048, 256, 0.2),
              (7, 16384, 30000, 1.0), (4, 16384, 30000, 1.0)]
STOPPED_PATHS = [4, 5, 6]                              # heavy, heavy+t2, light t4
