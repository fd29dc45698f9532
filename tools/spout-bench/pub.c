/*
 * pub.c - when events go out and what their replies mean; the adapter of
 * the --target moves the bytes (see pub.h).
 *
 * Event k goes to topic k % T with that topic's next sequence number, so the
 * sequence of publishes is the same whatever the adapter. Pacing:
 *   -r R  a token bucket refilled from CLOCK_MONOTONIC; a 1 ms timerfd only
 *         guarantees a wakeup, and the loop also pumps every PUMP_EVERY
 *         socket events. It holds 100 ms of events: on a busy host the
 *         process is routinely descheduled for several ms, and those events
 *         must be caught up, while a longer stall is not turned into a
 *         flood. What is not caught up shows as published/s below -r.
 *   -r 0  as fast as the adapter accepts events (spout: --window PUBs
 *         without a reply; HTTP: one request per idle connection).
 * Event-loop thread only; only the process that publishes calls these.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/timerfd.h>

#include "bench.h"
#include "pub.h"

static struct pub_adapter *adapter;
static char first_err[128];

void pub_open(void)
{
	adapter = opt.target == TARGET_SPOUT ? &pub_spout_adapter : &pub_http_adapter;
	adapter->open();
}

bool pub_ready(void)
{
	return adapter && !run.pub_dead && adapter->ready();
}

bool pub_idle(void)
{
	return adapter && adapter->idle();
}

uint64_t pub_replies(void)
{
	return st.pub_ok + st.pub_err;
}

const char *pub_first_err(void)
{
	return first_err;
}

void pub_event(uint32_t idx, uint32_t gen, uint32_t events)
{
	if (adapter)
		adapter->event(idx, gen, events);
}

void pub_release(void)
{
	if (adapter)
		adapter->release();
	adapter = NULL;
}

size_t pub_payload_max(void)
{
	return opt.size > 48 ? opt.size : 48;
}

/* Writes the payload of event <seq> at <out> (pub_payload_max() bytes of
 * room): "<seq>:<send_ns>:" padded with 'x' to --size. send_ns is read here,
 * just before the adapter writes it. Returns its length. */
size_t pub_payload(char *out, uint64_t seq)
{
	char *p = out;

	p += u64_dec(p, seq);
	*p++ = ':';
	p += u64_dec(p, (uint64_t)now_ns());
	*p++ = ':';
	size_t plen = (size_t)(p - out);
	if (plen < opt.size) {
		memset(p, 'x', opt.size - plen);
		p += opt.size - plen;
	}
	return (size_t)(p - out);
}

void pub_reply_ok(void)
{
	st.pub_ok++;
}

/* The broker rejected an event of <topic>: nobody should get it, so it is
 * no longer expected. <text> describes the rejection. */
void pub_reply_err(uint32_t topic, const char *text, size_t len)
{
	st.pub_err++;
	topic_err[topic]++;
	run.expected -= topic_nsubs[topic];
	if (first_err[0] == 0) {
		size_t m = len < sizeof first_err - 1 ? len : sizeof first_err - 1;
		memcpy(first_err, text, m);
		first_err[m] = 0;
	}
}

/* The publisher cannot go on. Not a failure if every event already had its
 * reply (the run is complete anyway). */
void pub_failure(const char *what, int err)
{
	if (run.pub_dead)
		return;
	run.pub_dead = true;
	adapter->close();
	if (run.phase >= PH_DRAIN && pub_replies() == st.published)
		return;
	run.pub_failed = true;
	say("publisher %s %s%s%s", opt.pub_addr, what, err ? ": " : "", err ? strerror(err) : "");
	if (run.phase == PH_PUBLISH)
		phase_end_publish(now_ns());
}

static void timer_arm(bool on)
{
	struct itimerspec its = { 0 };

	if (on) {
		its.it_interval.tv_nsec = NS_PER_MS;
		its.it_value.tv_nsec = NS_PER_MS;
	}
	if (timerfd_settime(run.tfd, 0, &its, NULL) == -1)
		die("timerfd_settime: %s", strerror(errno));
	run.timer_armed = on;
}

void pub_timer_off(void)
{
	if (run.timer_armed)
		timer_arm(false);
}

void pub_start(int64_t now)
{
	run.phase = PH_PUBLISH;
	run.pub_start = now;
	run.tok_last = now;
	run.tokens = 1.0;   /* the first event goes out at once */
	run.burst = opt.rate / 10.0 < 1.0 ? 1.0 : opt.rate / 10.0;
	timer_arm(opt.rate > 0);
}

static bool more_to_publish(int64_t now)
{
	if (opt.events)
		return st.published < opt.events;
	return now < run.pub_start + (int64_t)(opt.duration_s * (double)NS_PER_S);
}

static uint32_t next_topic(void)
{
	return (uint32_t)(st.published % opt.topics);
}

static void emit(void)
{
	uint32_t t = next_topic();
	uint64_t seq = ++topic_seq[t];

	/* Expected as soon as it is sent: an event with no reply yet (or
	 * ever) was not rejected, so its absence is a loss. */
	run.expected += topic_nsubs[t];
	st.published++;
	adapter->send(t, seq);
}

/* Publishes what pacing allows, then writes. Called after every batch of
 * events (and every PUMP_EVERY events within one). */
void pub_pump(int64_t now)
{
	if (!adapter)
		return;
	if (run.phase == PH_PUBLISH && !run.pub_dead) {
		if (opt.rate > 0) {
			run.tokens += secs(now - run.tok_last) * opt.rate;
			run.tok_last = now;
			if (run.tokens > run.burst)
				run.tokens = run.burst;
			while (run.tokens >= 1.0 && more_to_publish(now) &&
			       adapter->can_send(next_topic())) {
				emit();
				run.tokens -= 1.0;
			}
		} else {
			while (more_to_publish(now) && adapter->can_send(next_topic()))
				emit();
		}
		adapter->flush();
		if (!run.pub_dead && !more_to_publish(now))
			phase_end_publish(now);
		return;
	}
	if (!run.pub_dead)
		adapter->flush();
}
