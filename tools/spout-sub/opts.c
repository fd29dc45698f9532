/*
 * opts.c - spout-sub's command line and environment. Runs once, first.
 *
 * The address defaults to SPOUT_HTTP, spoutd's own variable for its HTTP
 * listener (a wildcard address there means this machine), as spout-pub's
 * defaults to SPOUT_PUB.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sub.h"

#ifndef SPOUT_VERSION
#define SPOUT_VERSION "unknown"
#endif

struct sub_opts opt = {
	.path = "/events",
	.idle_s = 60,
	.connect_timeout_s = 10,
};

static const char usage_text[] =
	"usage: spout-sub [options] TOPIC|PATTERN...\n"
	"\n"
	"Subscribes to spoutd's SSE stream of the given topics or patterns\n"
	"(orders.*.created, metrics.>) and prints each event as it arrives: JSON\n"
	"Lines when stdout is not a terminal (or with --json), readable lines on a\n"
	"terminal. Reconnects when the stream drops, resuming after the last event\n"
	"seen (Last-Event-ID), after the broker's retry: delay with back-off and\n"
	"jitter.\n"
	"\n"
	"  -H, --host HOST:PORT     spoutd's HTTP listener\n"
	"                           (env SPOUT_HTTP, default 127.0.0.1:8080)\n"
	"      --path PATH          the stream's path (default /events)\n"
	"  -n, --count N            exit after N events (spout-* notices not counted)\n"
	"      --timeout SEC        exit after SEC seconds (exit status 124)\n"
	"      --last-event-id ID   start after event ID (replayed from history)\n"
	"      --token T            JWT sent as Authorization: Bearer (env\n"
	"                           SPOUT_SUB_TOKEN); prefer --token-file\n"
	"      --token-file F       the token is the first line of F, read again for\n"
	"                           every connection (env SPOUT_SUB_TOKEN_FILE)\n"
	"      --no-reconnect       exit when the stream ends\n"
	"      --idle-timeout SEC   reconnect after SEC seconds without a byte, not\n"
	"                           even a heartbeat (default 60; 0 = never)\n"
	"      --connect-timeout SEC  per connection attempt (default 10)\n"
	"  -j, --json               JSON Lines even on a terminal\n"
	"      --text               readable lines even when piped\n"
	"  -q, --quiet              no notices on stderr (errors still print)\n"
	"  -v, --verbose            also say when connecting and connected\n"
	"  -h, --help               show this and exit\n"
	"  -V, --version            print the version and exit\n"
	"\n"
	"JSON Lines fields: id (null for an event without one), topic (when one\n"
	"literal topic is subscribed), event (\"message\" by default), data.\n"
	"spout-gap events (history no longer reaches back) are printed and noted on\n"
	"stderr. At spout-auth-expired the token file is read again; with no new\n"
	"token there, spout-sub exits with status 4.\n"
	"\n"
	"Exit status: 0 --count reached, or the stream ended with --no-reconnect;\n"
	"1 cannot connect or connection lost; 2 usage; 3 request refused (400\n"
	"bad topic, 404, other HTTP errors); 4 401, no valid token or it expired;\n"
	"5 403, topic not granted; 6 429, too many connections; 7 503, broker full\n"
	"or draining; 124 --timeout reached; 130 interrupted.\n"
	"\n"
	"Examples:\n"
	"  spout-sub news 'orders.>'\n"
	"  spout-sub --count 1 --timeout 10 orders.created | jq .data\n"
	"  spout-sub --token-file ~/.spout-token --last-event-id 1795567982123457 news\n";

static void usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "spout-sub: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(spout-sub --help lists the options)\n");
	exit(CLI_EXIT_USAGE);
}

/* An id goes back to the broker in a header: no control bytes. */
static bool header_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static double seconds(const char *s, const char *name, bool zero_ok)
{
	double v;

	if (cli_parse_number(s, 1e7, &v) != 0 || (!zero_ok && v <= 0))
		usage_error(zero_ok ? "%s: expected seconds >= 0" : "%s: expected seconds > 0",
			    name);
	return v;
}

void opts_parse(int argc, char **argv)
{
	enum { O_PATH = 256, O_TIMEOUT, O_LAST_ID, O_TOKEN, O_TOKEN_FILE, O_NO_RECONNECT, O_IDLE,
	       O_CONNECT_TIMEOUT, O_TEXT };
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "path", required_argument, NULL, O_PATH },
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "last-event-id", required_argument, NULL, O_LAST_ID },
		{ "token", required_argument, NULL, O_TOKEN },
		{ "token-file", required_argument, NULL, O_TOKEN_FILE },
		{ "no-reconnect", no_argument, NULL, O_NO_RECONNECT },
		{ "idle-timeout", required_argument, NULL, O_IDLE },
		{ "connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT },
		{ "json", no_argument, NULL, 'j' },
		{ "text", no_argument, NULL, O_TEXT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char err[512];
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:H:n:jqvhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'H': opt.host_spec = optarg; break;
		case O_PATH:
			if (optarg[0] != '/' || !header_safe(optarg) || strchr(optarg, ' ') ||
			    strchr(optarg, '?'))
				usage_error("--path: expected an absolute path without spaces or "
					    "query, got '%s'", optarg);
			opt.path = optarg;
			break;
		case 'n':
			if (cli_parse_u64(optarg, 1, UINT64_MAX, &opt.count) != 0)
				usage_error("--count: expected a number >= 1, got '%s'", optarg);
			break;
		case O_TIMEOUT: opt.timeout_s = seconds(optarg, "--timeout", false); break;
		case O_LAST_ID:
			if (!header_safe(optarg) || strlen(optarg) > SUB_ID_MAX)
				usage_error("--last-event-id: '%s' has control characters or is too "
					    "long", optarg);
			opt.last_event_id = optarg;
			break;
		case O_TOKEN: opt.token_arg = optarg; opt.token_from = "--token"; break;
		case O_TOKEN_FILE: opt.token_file = optarg; opt.token_from = "--token-file"; break;
		case O_NO_RECONNECT: opt.no_reconnect = true; break;
		case O_IDLE: opt.idle_s = seconds(optarg, "--idle-timeout", true); break;
		case O_CONNECT_TIMEOUT:
			opt.connect_timeout_s = seconds(optarg, "--connect-timeout", false);
			break;
		case 'j': opt.json = true; break;
		case O_TEXT: opt.text = true; break;
		case 'q': opt.quiet = true; break;
		case 'v': opt.verbose = true; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		case 'V': printf("spout-sub (spout %s)\n", SPOUT_VERSION); exit(0);
		case ':':
			usage_error("option '%s' needs a value", argv[optind - 1]);
			break;
		default:
			if (optopt != 0) {
				char o[3] = { '-', (char)optopt, '\0' };

				usage_error("unknown option '%s'", o);
			}
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind == argc)
		usage_error("%s", "name at least one topic or pattern (spout-sub news 'orders.>')");
	opt.topics = (const char **)argv + optind;
	opt.ntopics = (size_t)(argc - optind);
	if (opt.json && opt.text)
		usage_error("%s", "--json and --text contradict each other");
	if (opt.token_arg != NULL && opt.token_file != NULL)
		usage_error("%s", "give --token or --token-file, not both");
	if (opt.token_arg == NULL && opt.token_file == NULL) {
		const char *t = getenv("SPOUT_SUB_TOKEN"), *f = getenv("SPOUT_SUB_TOKEN_FILE");

		if (t != NULL && *t != '\0') {
			opt.token_arg = t;
			opt.token_from = "SPOUT_SUB_TOKEN";
		} else if (f != NULL && *f != '\0') {
			opt.token_file = f;
			opt.token_from = "SPOUT_SUB_TOKEN_FILE";
		}
	}
	if (opt.token_arg != NULL && !cli_token_ok(opt.token_arg))
		usage_error("the token from %s must be printable ASCII without spaces",
			    opt.token_from);

	if (opt.host_spec == NULL) {
		const char *env = getenv("SPOUT_HTTP");

		opt.host_spec = env && *env ? env : SUB_DEFAULT_HOST ":" SUB_DEFAULT_PORT;
	}
	if (cli_parse_hostport(opt.host_spec, SUB_DEFAULT_HOST, SUB_DEFAULT_PORT, true,
			       &opt.host, &opt.port, err, sizeof err) != 0)
		usage_error("--host: %s", err);
}
