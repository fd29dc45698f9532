/*
 * opts.c - spout-pub's command line and environment. Runs once, first.
 *
 * The environment variables are spoutd's own (SPOUT_PUB, SPOUT_PUB_TOKEN,
 * SPOUT_PUB_TOKEN_FILE): a shell or an env file that configures the broker
 * configures its publishers too, and spoutd never warns about them as
 * unknown SPOUT_* variables.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pub.h"

#ifndef SPOUT_VERSION
#define SPOUT_VERSION "unknown"
#endif

struct pub_opts opt = {
	.window = 128,
	.timeout_s = 10,
	/* Well inside spoutd's default --pub-idle-timeout-ms (300 s). */
	.keepalive_s = 30,
};

static const char usage_text[] =
	"usage: spout-pub [options] TOPIC DATA      publish one event, print its id\n"
	"       spout-pub [options] -t TOPIC DATA   the same\n"
	"       spout-pub [options] [-f FILE]       publish one event per input line\n"
	"\n"
	"Publishes to spoutd's publisher port over its line protocol. Input lines\n"
	"are JSON objects (JSON Lines) {\"topic\": ..., \"event\": ..., \"data\": ...}\n"
	"where data is a string or any JSON value (sent as compact JSON), or, with\n"
	"--topic, plain text lines, each the data of one event. Blank lines are\n"
	"skipped. Every line is acknowledged; refused lines are reported on stderr\n"
	"with their line number and the broker's reason.\n"
	"\n"
	"  -H, --host HOST:PORT    spoutd's publisher listener\n"
	"                          (env SPOUT_PUB, default 127.0.0.1:7400)\n"
	"  -t, --topic TOPIC       topic of plain input lines (and of JSON lines\n"
	"                          without one); with one argument, publish it\n"
	"  -e, --event TYPE        event type (SSE \"event:\") for events without one\n"
	"  -f, --file FILE         read events from FILE; - = stdin (the default)\n"
	"      --format F          jsonl | plain (default: plain with --topic, else jsonl)\n"
	"  -r, --rate N            at most N events per second (default: no limit)\n"
	"  -w, --window N          commands in flight before waiting for replies\n"
	"                          (default 128)\n"
	"      --token T           send AUTH T first (env SPOUT_PUB_TOKEN);\n"
	"                          prefer --token-file, which keeps it out of ps\n"
	"      --token-file F      the token is the first line of F\n"
	"                          (env SPOUT_PUB_TOKEN_FILE)\n"
	"      --timeout SEC       connect timeout, and the longest wait for a\n"
	"                          reply (default 10)\n"
	"      --keepalive SEC     PING a quiet stream every SEC seconds, so the\n"
	"                          broker's idle timeout does not close it\n"
	"                          (default 30; 0 = never)\n"
	"      --stop-on-error     stop at the first refused or invalid line\n"
	"      --ids               print each published event's id on stdout\n"
	"  -q, --quiet             no progress and no summary (errors still print)\n"
	"  -h, --help              show this and exit\n"
	"  -V, --version           print the version and exit\n"
	"\n"
	"A progress bar (input size known) or counter is drawn on stderr when it is\n"
	"a terminal; the summary (sent, ok, failed, elapsed, rate) ends a stream.\n"
	"\n"
	"Exit status: 0 all published; 1 a line was refused or invalid; 2 usage;\n"
	"3 cannot connect, connection lost or no reply in time; 4 token refused\n"
	"or required; 130 interrupted.\n"
	"\n"
	"Examples:\n"
	"  spout-pub orders.created '{\"id\":1}'\n"
	"  printf '%s\\n' a b c | spout-pub --topic news\n"
	"  spout-pub -f events.jsonl --rate 500\n";

static void usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "spout-pub: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(spout-pub --help lists the options)\n");
	exit(CLI_EXIT_USAGE);
}

/* The token from --token, --token-file or the environment, in that order
 * (a flag wins over the environment, as with spoutd). */
static void resolve_token(const char *flag_token, const char *flag_file)
{
	const char *env_token = getenv("SPOUT_PUB_TOKEN");
	const char *env_file = getenv("SPOUT_PUB_TOKEN_FILE");
	const char *file = NULL;
	char err[512];

	if (flag_token != NULL && flag_file != NULL)
		usage_error("%s", "give --token or --token-file, not both");
	if (flag_token != NULL) {
		opt.token = cli_xstrdup(flag_token);
		opt.token_from = "--token";
	} else if (flag_file != NULL) {
		file = flag_file;
		opt.token_from = "--token-file";
	} else if (env_token != NULL && *env_token != '\0') {
		opt.token = cli_xstrdup(env_token);
		opt.token_from = "SPOUT_PUB_TOKEN";
	} else if (env_file != NULL && *env_file != '\0') {
		file = env_file;
		opt.token_from = "SPOUT_PUB_TOKEN_FILE";
	}
	if (file != NULL && cli_read_token_file(file, &opt.token, err, sizeof err) != 0)
		usage_error("token file %s", err);
	/* A space or line break would end the AUTH line early and turn the
	 * rest of the token into a command. */
	if (opt.token != NULL && !cli_token_ok(opt.token))
		usage_error("the token from %s must be printable ASCII without spaces",
			    opt.token_from);
}

void opts_parse(int argc, char **argv)
{
	enum { O_FORMAT = 256, O_TOKEN, O_TOKEN_FILE, O_TIMEOUT, O_KEEPALIVE, O_STOP, O_IDS };
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "topic", required_argument, NULL, 't' },
		{ "event", required_argument, NULL, 'e' },
		{ "file", required_argument, NULL, 'f' },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "rate", required_argument, NULL, 'r' },
		{ "window", required_argument, NULL, 'w' },
		{ "token", required_argument, NULL, O_TOKEN },
		{ "token-file", required_argument, NULL, O_TOKEN_FILE },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "keepalive", required_argument, NULL, O_KEEPALIVE },
		{ "stop-on-error", no_argument, NULL, O_STOP },
		{ "ids", no_argument, NULL, O_IDS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *flag_token = NULL, *flag_file = NULL;
	uint64_t v;
	char err[512];
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:H:t:e:f:r:w:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'H': opt.host_spec = optarg; break;
		case 't': opt.topic = optarg; break;
		case 'e': opt.event_type = optarg; break;
		case 'f': opt.file = optarg; break;
		case O_FORMAT:
			if (strcmp(optarg, "jsonl") == 0 || strcmp(optarg, "json") == 0)
				opt.format = FORMAT_JSONL;
			else if (strcmp(optarg, "plain") == 0)
				opt.format = FORMAT_PLAIN;
			else
				usage_error("--format: expected jsonl or plain, got '%s'", optarg);
			break;
		case 'r':
			if (cli_parse_number(optarg, 1e9, &opt.rate) != 0 || opt.rate <= 0)
				usage_error("--rate: expected events per second > 0, got '%s'",
					    optarg);
			break;
		case 'w':
			if (cli_parse_u64(optarg, 1, PUB_WINDOW_MAX, &v) != 0)
				usage_error("--window: expected 1..65536, got '%s'", optarg);
			opt.window = (unsigned long)v;
			break;
		case O_TOKEN: flag_token = optarg; break;
		case O_TOKEN_FILE: flag_file = optarg; break;
		case O_TIMEOUT:
			if (cli_parse_number(optarg, 86400, &opt.timeout_s) != 0 ||
			    opt.timeout_s <= 0)
				usage_error("--timeout: expected seconds > 0, got '%s'", optarg);
			break;
		case O_KEEPALIVE:
			if (cli_parse_number(optarg, 86400, &opt.keepalive_s) != 0)
				usage_error("--keepalive: expected seconds >= 0, got '%s'", optarg);
			break;
		case O_STOP: opt.stop_on_error = true; break;
		case O_IDS: opt.print_ids = true; break;
		case 'q': opt.quiet = true; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		case 'V': printf("spout-pub (spout %s)\n", SPOUT_VERSION); exit(0);
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

	int nargs = argc - optind;
	if (nargs == 2) {
		if (opt.topic != NULL)
			usage_error("%s", "give the topic as --topic or as the first argument, "
				    "not both");
		opt.one_topic = argv[optind];
		opt.one_data = argv[optind + 1];
	} else if (nargs == 1) {
		if (opt.topic == NULL)
			usage_error("missing DATA after the topic '%s' (to publish lines from stdin "
				    "to a topic: spout-pub --topic TOPIC)", argv[optind]);
		opt.one_topic = opt.topic;
		opt.one_data = argv[optind];
	} else if (nargs > 2) {
		usage_error("too many arguments, starting at '%s' (quote DATA that has spaces)",
			    argv[optind + 2]);
	}
	if (opt.one_data != NULL && (opt.file != NULL || opt.format != FORMAT_AUTO))
		usage_error("%s", "-f and --format read a stream; a single event takes "
			    "TOPIC DATA only");
	if (opt.format == FORMAT_AUTO)
		opt.format = opt.topic != NULL ? FORMAT_PLAIN : FORMAT_JSONL;
	if (opt.format == FORMAT_PLAIN && opt.topic == NULL)
		usage_error("%s", "--format plain needs --topic");

	if (opt.host_spec == NULL) {
		const char *env = getenv("SPOUT_PUB");

		opt.host_spec = env && *env ? env : PUB_DEFAULT_HOST ":" PUB_DEFAULT_PORT;
	}
	if (cli_parse_hostport(opt.host_spec, PUB_DEFAULT_HOST, PUB_DEFAULT_PORT, false,
			       &opt.host, &opt.port, err, sizeof err) != 0)
		usage_error("--host: %s", err);
	resolve_token(flag_token, flag_file);
}
