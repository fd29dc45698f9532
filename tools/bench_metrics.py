#!/usr/bin/env python3
"""bench_metrics.py - what /metrics costs: deliveries/s and p99 of a
fan-out (1000 subscribers, one topic; --rate 0 saturates, as fast as the
publisher window allows) with and without a scraper hitting GET /metrics
every 100 ms,
alternating runs against the same broker. Also saves one scrape taken
under load to build/bench/metrics-under-load.txt.

Usage: bench_metrics.py --spoutd build/spoutd --bench build/spout-bench
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import threading
import time
import urllib.request

from benchlib import free_port


def run(bench, http, pub, seconds, prefix, rate):
    out = subprocess.run([bench, "--http", "127.0.0.1:%d" % http, "--pub", "127.0.0.1:%d" % pub,
                          "-s", "1000", "-t", "1", "-r", str(rate), "--window", "200",
                          "-d", str(seconds),
                          "--src-addrs", "127.0.0.2-127.0.0.20", "--topic-prefix", prefix,
                          "--max-seconds", str(seconds + 60), "--json"],
                         capture_output=True, text=True, timeout=seconds + 90)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spoutd", default="build/spoutd")
    ap.add_argument("--bench", default="build/spout-bench")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rate", type=int, default=0,
                    help="events/s; 0 = saturate (as fast as the publisher window allows)")
    ap.add_argument("--out", default="build/bench/metrics-under-load.txt")
    a = ap.parse_args()
    http, pub = free_port(), free_port()
    proc = subprocess.Popen([a.spoutd, "--http", "127.0.0.1:%d" % http,
                             "--pub", "127.0.0.1:%d" % pub, "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        results = {False: [], True: []}
        saved = [False]
        for rep in range(a.reps):
            for scrape in (False, True):
                stop = threading.Event()
                scrapes = [0]

                def scraper():
                    while not stop.is_set():
                        body = urllib.request.urlopen(
                            "http://127.0.0.1:%d/metrics" % http, timeout=5).read()
                        scrapes[0] += 1
                        if scrapes[0] == 20 and not saved[0]:
                            os.makedirs(os.path.dirname(a.out), exist_ok=True)
                            with open(a.out, "wb") as f:
                                f.write(body)
                            saved[0] = True
                        stop.wait(0.1)
                t = threading.Thread(target=scraper) if scrape else None
                if t:
                    t.start()
                try:
                    r = run(a.bench, http, pub, a.seconds, "m%d%d" % (rep, scrape), a.rate)
                finally:
                    stop.set()
                    if t:
                        t.join()
                results[scrape].append((r["deliveries_per_s"], r["p99_ms"], scrapes[0]))
                print("rep %d %-14s %10.0f deliveries/s  p99 %7.2f ms  lost %d  scrapes %d" % (
                    rep, "scraping" if scrape else "not scraping", r["deliveries_per_s"],
                    r["p99_ms"], r["lost"], scrapes[0]), flush=True)
        base = statistics.median(d for d, _, _ in results[False])
        with_s = statistics.median(d for d, _, _ in results[True])
        print("median deliveries/s: %.0f without, %.0f with a scrape every 100 ms (ratio %.3f)"
              % (base, with_s, with_s / base))
        print("scrape under load saved to %s" % a.out)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


if __name__ == "__main__":
    main()
