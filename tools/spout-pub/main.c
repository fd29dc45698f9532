/*
 * main.c - spout-pub: connect, authenticate, then publish one event from
 * the command line or a stream from a file or stdin (stream.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pub.h"

volatile sig_atomic_t pub_interrupted;

/* First SIGINT/SIGTERM: stop reading input, collect the replies still
 * due, print the summary. A second one ends the process at once. */
static void on_signal(int sig)
{
	if (pub_interrupted)
		_exit(128 + sig);
	pub_interrupted = 1;
}

/* AUTH <token> before anything else, and its answer. A wrong token
 * closes the connection on the broker's side, so there is nothing to
 * pipeline behind it. */
static void authenticate(struct conn *c)
{
	char cmd[CLI_TOKEN_MAX + 8], reply[PUB_REPLY_MAX + 1];
	int n = snprintf(cmd, sizeof cmd, "AUTH %s\n", opt.token);

	conn_roundtrip(c, cmd, (size_t)n, reply, sizeof reply);
	if (strcmp(reply, "OK") == 0)
		return;
	if (strcmp(reply, "ERR auth not enabled") == 0) {
		/* SPOUT_PUB_TOKEN is often set for every process of a host;
		 * a broker without --pub-token simply does not need it. */
		if (!opt.quiet)
			cli_say("note: the broker does not use publisher tokens; the token from %s "
				"was not needed", opt.token_from);
		return;
	}
	if (strncmp(reply, "ERR ", 4) == 0)
		cli_die(PUB_EXIT_AUTH, "the broker refused the token from %s: %s", opt.token_from,
			reply + 4);
	cli_die(PUB_EXIT_CONN, "unexpected reply to AUTH: '%s' (is %s:%s spoutd's publisher "
		"port?)", reply, opt.host, opt.port);
}

/* spout-pub TOPIC DATA: one command, its id on stdout. */
static int publish_one(struct conn *c)
{
	struct record rec = {
		.topic = opt.one_topic,
		.type = opt.event_type,
		.data = opt.one_data,
		.data_len = strlen(opt.one_data),
	};
	const char *bad = record_check(&rec);
	char *buf = NULL, reply[PUB_REPLY_MAX + 1];
	size_t len = 0, cap = 0;
	uint64_t id;

	if (bad != NULL)
		cli_die(PUB_EXIT_FAILED, "not sent: %s", bad);
	record_encode(&rec, &buf, &len, &cap);
	conn_roundtrip(c, buf, len, reply, sizeof reply);
	free(buf);
	if (reply_ok_id(reply, &id) == 0) {
		printf("%" PRIu64 "\n", id);
		return fflush(stdout) == 0 ? 0 : PUB_EXIT_FAILED;
	}
	if (strncmp(reply, "ERR auth required", 17) == 0)
		cli_die(PUB_EXIT_AUTH, "the broker refused the event: %s (give --token, "
			"--token-file or SPOUT_PUB_TOKEN)", reply + 4);
	if (strncmp(reply, "ERR ", 4) == 0)
		cli_die(PUB_EXIT_FAILED, "the broker refused the event: %s", reply + 4);
	cli_die(PUB_EXIT_CONN, "unexpected reply '%s' (is %s:%s spoutd's publisher port?)",
		reply, opt.host, opt.port);
}

int main(int argc, char **argv)
{
	struct conn c;
	struct input in;
	int status;

	cli_prog = "spout-pub";
	opts_parse(argc, argv);

	if (opt.one_data == NULL) {
		int rc = input_open(&in, opt.file);

		if (rc != 0)
			cli_die(CLI_EXIT_USAGE, "%s: %s", opt.file, strerror(-rc));
		cli_signals_init(on_signal);
	}
	conn_open(&c);
	if (opt.token != NULL)
		authenticate(&c);
	if (opt.one_data != NULL) {
		status = publish_one(&c);
	} else {
		status = stream_run(&c, &in);
		input_close(&in);
	}
	conn_close(&c);
	free(opt.token);
	free(opt.host);
	free(opt.port);
	return status;
}
