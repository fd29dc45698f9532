/*
 * main.c - spoutd: parse flags, start the broker, wait for SIGINT/SIGTERM,
 * stop cleanly, exit 0.
 *
 * Signals are blocked in every thread (the mask is inherited) and taken
 * synchronously here with sigwait, so no handler ever runs inside a worker.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spout/broker.h"
#include "spout/config.h"
#include "spout/ev.h"
#include "spout/log.h"

int main(int argc, char **argv)
{
	static struct sp_config cfg;
	static struct sp_broker broker;
	sigset_t set;
	int sig;

	int rc = sp_config_parse(&cfg, argc, argv, stderr);
	if (rc == 1)
		return 0;
	if (rc != 0)
		return 2;
	sp_log_set_level(cfg.log_level);
	/* Before any thread: every loop is opened on this backend. */
	if (sp_ev_set_backend(cfg.io) != 0) {
#ifdef SP_HAVE_URING
		fprintf(stderr, "spoutd: --io uring: this kernel refuses io_uring "
			"multishot poll (needs >= 5.13, not disabled); use --io epoll\n");
#else
		fprintf(stderr, "spoutd: --io uring: built without liburing "
			"(install liburing-dev and rebuild); use --io epoll\n");
#endif
		return 2;
	}
	sp_log(SP_LOG_DEBUG, "readiness backend", "io=%s", sp_ev_backend_name());

	/* A write to a closed socket must be an EPIPE, not a dead process. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (sp_broker_start(&broker, &cfg) != 0) {
		sp_broker_stop(&broker);
		return 1;
	}
	do {
		if (sigwait(&set, &sig) != 0)
			sig = 0;
	} while (sig != SIGINT && sig != SIGTERM);
	sp_log(SP_LOG_INFO, "shutting down", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	sp_broker_stop(&broker);
	sp_log_msg(SP_LOG_INFO, "stopped");
	return 0;
}
