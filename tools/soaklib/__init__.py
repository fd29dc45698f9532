"""soaklib - the parts of tools/soak.py, the mixed-load soak test of spoutd.

tools/soak.py is the entry point: its docstring says what the soak does and
asserts, and its main() parses the command line. The work is split here by
concern; each role runs in a process of its own (soak.py re-executes itself
with --role NAME --config FILE) and leaves its result in a JSON file.

  common       topic matching, event CRCs, process and file helpers
  topology     the load mix: topics, healthy subscriptions, client paths
  client       opening client connections; what one stream saw (Received)
  healthy      role: subscribers that must see every event exactly once
  publisher    role: publishers (PUB, EVENT, pipelined, heavy)
  badreq       role: bad requests; every bad case and the answer it must get
  churn        role: subscribe/unsubscribe cycles, aborts, resumes
  readers      roles: slow readers and SIGSTOPped readers
  target       the broker under test: start or attach, metrics, fds, RSS
  orchestrate  the run: child processes, baseline, load timeline, verdict
  afterload    the broker after the load: settle, fds, connections, memory
  verify       what the clients saw against what was published
  report       the printed summary

The integration harness (test/integration/harness.py) provides the broker,
SSE client, publisher and raw HTTP helpers; importing this package puts it
on sys.path.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
