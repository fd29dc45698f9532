"""Subscriber authentication (issue 7): JWTs minted independently of spout
(jwtmint.py: Python's hmac, the openssl command) presented in the three
places a client can put one, the 401/403 answers with their reasons, the
attacks that must fail, public topics, and a stream that ends when its
token expires."""
import os
import tempfile
import time

from harness import Broker, check, eq, run_spoutd, test
import jwtmint

SECRET = "integration-test-secret-0123456789abcdef"


def _get(b, path, headers=""):
    return b.http(("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, headers)).encode(), 5.0)


def _claims(topics, ttl=600, **extra):
    c = {"sub": "tester", "exp": int(time.time()) + ttl, "topics": topics}
    c.update(extra)
    return c


def _expect_refused(b, path, status, reason, headers="", challenge=None):
    r = _get(b, path, headers)
    eq(r.status, status, "%s %s: %s" % (path, headers.strip(), r.describe()))
    check(reason in r.body.decode("utf-8", "replace"),
          "%s: reason %r in %r" % (path, reason, r.body))
    www = r.headers.get("www-authenticate", "")
    check(www.startswith("Bearer realm=\"spout\""), "challenge header: %r" % www)
    if challenge:
        check('error="%s"' % challenge in www, "challenge %s in %r" % (challenge, www))
    return r


@test
def token_in_header_query_or_cookie_opens_the_stream():
    tok = jwtmint.hs(SECRET, _claims(["news", "orders.>"]))
    with Broker("--jwt-secret", SECRET, "--jwt-cookie", "spout_token") as b:
        opened = []
        for how, kw in (("header", {"extra_headers": "Authorization: Bearer %s\r\n" % tok}),
                        ("cookie", {"extra_headers": "Cookie: a=1; spout_token=%s\r\n" % tok}),
                        ("query", {})):
            path = "/events?topic=news&topic=orders.*.created"
            if how == "query":
                path += "&token=" + tok
            c = b.sse(path, **kw)
            eq(c.wait_head().status, 200, "stream with the token in the %s" % how)
            opened.append(c)
        with b.publisher() as p:
            i1 = p.pub("news", "n1")
            i2 = p.pub("orders.eu.created", "o1")
        for c in opened:
            evs = c.expect_events(2)
            eq([(int(e.id), e.data) for e in evs], [(i1, "n1"), (i2, "o1")], "events")
            c.close()
        eq(b.metric('spout_auth_total{result="ok"}'), 3, "three streams authenticated")


@test
def missing_bad_and_forbidden_tokens_get_401_and_403():
    good = jwtmint.hs(SECRET, _claims(["news"]))
    with Broker("--jwt-secret", SECRET) as b:
        _expect_refused(b, "/events/news", 401, "token required")
        _expect_refused(b, "/events/news", 401, "Authorization must be",
                        "Authorization: Basic dXNlcjpwdw==\r\n", "invalid_request")
        _expect_refused(b, "/events/news?token=" + good[:-3] + "AAA", 401,
                        "token signature invalid", challenge="invalid_token")
        _expect_refused(b, "/events/news?token=" + jwtmint.hs(SECRET, _claims(["news"], ttl=-60)),
                        401, "token expired", challenge="invalid_token")
        _expect_refused(b, "/events/news?token=" + jwtmint.hs("another-secret-0123456789abcdef!!",
                                                            _claims(["news"])),
                        401, "token signature invalid")
        _expect_refused(b, "/events/news?token=not.a.jwt", 401, "malformed token")
        _expect_refused(b, "/events/sport?token=" + good, 403,
                        "token does not grant for topic sport", challenge="insufficient_scope")
        _expect_refused(b, "/events?topic=news&topic=news.x&token=" + good, 403,
                        "topic news.x")
        _expect_refused(b, "/events/news.%3E?token=" + good, 403, "topic news.>")
        m = b.metrics()
        eq(m['spout_auth_total{result="missing"}'], 1, "missing")
        eq(m['spout_auth_total{result="invalid"}'], 5, "invalid")
        eq(m['spout_auth_total{result="forbidden"}'], 3, "forbidden")
        eq(m['spout_auth_total{result="ok"}'], 0, "none passed")
        # HEAD is checked too (it would otherwise tell who may read what)
        r = b.http(b"HEAD /events/news HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(r.status, 401, "HEAD without a token")


@test
def attacks_on_the_token_are_refused():
    keys = jwtmint.Keys()
    try:
        with Broker("--jwt-public-key", keys.ec_pub) as b:
            wide = _claims([">"])
            attacks = {
                "alg none": jwtmint.none_alg(wide),
                "HS256 signed with the public key": jwtmint.hs(keys.public_pem("ec"), wide),
                "HS256 while only a public key is set": jwtmint.hs("x" * 40, wide),
                "RS256 while only an EC key is set": keys.rs256(wide),
            }
            for what, tok in attacks.items():
                r = _get(b, "/events/anything?token=" + tok)
                eq(r.status, 401, "%s: %s" % (what, r.describe()))
            # payload swapped under a genuine signature
            genuine = keys.es256(_claims(["news"]))
            forged_payload = jwtmint.b64url(('{"topics":[">"],"exp":%d}'
                                             % (time.time() + 600)).encode())
            h, _, s = genuine.split(".")
            r = _get(b, "/events/secret?token=%s.%s.%s" % (h, forged_payload, s))
            eq(r.status, 401, "swapped payload: %s" % r.describe())
            check(b"signature invalid" in r.body, r.describe())
            # and the genuine one works
            c = b.sse("/events/news?token=" + genuine)
            eq(c.wait_head().status, 200, "genuine ES256 token")
            c.close()
        with Broker("--jwt-public-key", keys.rsa_pub) as b:
            c = b.sse("/events/news?token=" + keys.rs256(_claims(["news"])))
            eq(c.wait_head().status, 200, "genuine RS256 token")
            c.close()
            r = _get(b, "/events/news?token=" + keys.es256(_claims(["news"])))
            eq(r.status, 401, "ES256 token against an RSA key")
    finally:
        keys.close()


@test
def optional_mode_public_topics_for_anyone():
    tok = jwtmint.hs(SECRET, _claims(["private.>"]))
    with Broker("--jwt-secret", SECRET, "--auth", "optional", "--public-topics", "public.>") as b:
        anon = b.sse("/events/public.news")
        eq(anon.wait_head().status, 200, "anonymous on a public topic")
        _expect_refused(b, "/events/private.x", 401, "token required for topic private.x")
        _expect_refused(b, "/events/private.x?token=garbage", 401, "malformed token")
        both = b.sse("/events?topic=public.news&topic=private.x&token=" + tok)
        eq(both.wait_head().status, 200, "token: its grant plus the public topics")
        with b.publisher() as p:
            i = p.pub("public.news", "hello")
        eq([(int(e.id), e.data) for e in anon.expect_events(1)], [(i, "hello")], "anonymous")
        eq(int(both.expect_events(1)[0].id), i, "token holder")
        anon.close()
        both.close()
    # required: public topics need a valid token, any valid token
    with Broker("--jwt-secret", SECRET, "--public-topics", "public.>") as b:
        _expect_refused(b, "/events/public.news", 401, "token required")
        c = b.sse("/events/public.news?token=" + tok)
        eq(c.wait_head().status, 200, "required mode: public topic with any valid token")
        c.close()


@test(timeout=30)
def stream_ends_when_its_token_expires():
    with Broker("--jwt-secret", SECRET, "--jwt-leeway-s", "0") as b:
        tok = jwtmint.hs(SECRET, _claims(["news"], ttl=2))
        c = b.sse("/events/news?token=" + tok)
        eq(c.wait_head().status, 200, "head")
        with b.publisher() as p:
            i = p.pub("news", "before")
        eq(c.expect_events(1)[0].data, "before", "delivered while valid")
        t0 = time.monotonic()
        end = c.wait_end(timeout=6)
        eq(end, "clean", "the stream ends with the terminating chunk")
        evs = c.take_events()
        eq([e.type for e in evs], ["spout-auth-expired"], "the last event says why")
        check(time.monotonic() - t0 < 5, "ended around exp (within the timer tick)")
        eq(b.metric('spout_connections_closed_total{reason="token_expired"}'), 1, "counted")
        # a long-lived token's stream stays open meanwhile
        long_tok = jwtmint.hs(SECRET, _claims(["news"], ttl=3600))
        c2 = b.sse("/events/news?token=" + long_tok)
        eq(c2.wait_head().status, 200, "head")
        check(c2.wait_end(timeout=1.0) is None, "still open")
        c2.close()


@test
def bad_auth_settings_stop_the_start():
    with tempfile.TemporaryDirectory() as d:
        notpem = os.path.join(d, "key.pem")
        with open(notpem, "w") as f:
            f.write("hello\n")
        for args, want in ((["--jwt-secret", "short"], "at least 32"),
                           (["--auth", "required"], "needs a key"),
                           (["--jwt-public-key", notpem], "not a PEM public key"),
                           (["--jwt-public-key", os.path.join(d, "missing")], "No such file"),
                           (["--auth", "sometimes"], "is not off, optional")):
            rc, _, err = run_spoutd(args)
            eq(rc, 2, "exit status for %s" % args)
            check(want in err, "stderr for %s: %r" % (args, err))
