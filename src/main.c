/*
 * main.c - spoutd: parse flags, start the broker, monitor it, drain on
 * SIGTERM, stop cleanly, exit 0.
 *
 * Signals are blocked in every thread (the mask is inherited) and taken
 * synchronously here with sigwait, so no handler ever runs inside a worker.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spout/auth.h"
#include "spout/broker.h"
#include "spout/config.h"
#include "spout/ev.h"
#include "spout/log.h"
#include "spout/sys.h"

int main(int argc, char **argv)
{
	static struct sp_config cfg;
	static struct sp_broker broker;
	struct sp_auth *auth = NULL;
	sigset_t set;
	int sig;

	int rc = sp_config_parse(&cfg, argc, argv, stderr);
	if (rc == 1)
		return 0;
	if (rc != 0)
		return 2;
	sp_log_set_level(cfg.log_level);
	if (sp_auth_new(&cfg, &auth, stderr) != 0)
		return 2;
	/* Before any thread: every loop is opened on this backend. The
	 * default (auto) waits on epoll and batches writes through io_uring
	 * when available (workers set that up themselves; see worker.c). */
	if (cfg.io == SP_IO_URING && sp_ev_set_backend(SP_EV_URING) != 0) {
#ifdef SP_HAVE_URING
		fprintf(stderr, "spoutd: --io uring: this kernel refuses io_uring "
			"multishot poll (needs >= 5.13, not disabled); use --io epoll\n");
#else
		fprintf(stderr, "spoutd: --io uring: built without liburing "
			"(install liburing-dev and rebuild); use --io epoll\n");
#endif
		return 2;
	}
	sp_log(SP_LOG_INFO, "io backend", "wait=%s writes=%s", sp_ev_backend_name(),
	       cfg.io == SP_IO_EPOLL ? "writev" : "io_uring if available");

	/* A write to a closed socket must be an EPIPE, not a dead process. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (sp_broker_start(&broker, &cfg, auth) != 0) {
		sp_broker_stop(&broker);
		sp_auth_free(auth);
		return 1;
	}
	/* Main is the monitor: once a second it evaluates the reconnect-storm
	 * signal, and it waits for the signals that end the process. */
	struct timespec tick = { .tv_sec = 1 };
	for (;;) {
		sig = sigtimedwait(&set, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM)
			break;
		sp_broker_monitor(&broker);
	}
	sp_log(SP_LOG_INFO, "shutting down", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	/* SIGTERM drains: streams close spread over --drain-ms so their
	 * clients reconnect elsewhere without a storm. SIGINT (Ctrl-C), or a
	 * second signal during the drain, stops at once. */
	if (sig == SIGTERM && cfg.drain_ms > 0) {
		sp_broker_drain(&broker);
		uint64_t end = sp_now_ms() + cfg.drain_ms + 1000;
		while (sp_broker_open(&broker) > 0 && sp_now_ms() < end) {
			struct timespec step = { .tv_nsec = 50L * 1000000 };
			int again = sigtimedwait(&set, NULL, &step);
			if (again == SIGINT || again == SIGTERM) {
				sp_log(SP_LOG_INFO, "second signal: stopping now", "open=%u",
				       sp_broker_open(&broker));
				break;
			}
		}
	}
	sp_broker_stop(&broker);
	sp_auth_free(auth);
	sp_log_msg(SP_LOG_INFO, "stopped");
	return 0;
}
