/*
 * progress.c - what spout-pub shows while a stream runs, and after.
 *
 * On a terminal (stderr), and unless --quiet: a bar with the share of the
 * input answered, the rate and an ETA when the input's size is known (a
 * regular file), else a running counter. It is redrawn in place at most
 * ten times a second, and erased before any other message so lines never
 * mix. When stderr is not a terminal nothing is drawn: logs get only the
 * error lines and the summary.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "pub.h"

#define REDRAW_NS (100 * CLI_NS_PER_MS)

static bool on, drawn;
static uint64_t total;
static int64_t last_draw;

void progress_init(uint64_t size)
{
	on = !opt.quiet && isatty(STDERR_FILENO);
	total = size;
}

static int columns(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

/* "1:02:03" or "2:03". */
static void fmt_duration(char *out, size_t len, double s)
{
	unsigned long v = s > 0 && s < 1e7 ? (unsigned long)(s + 0.5) : 0;

	if (v >= 3600)
		snprintf(out, len, "%lu:%02lu:%02lu", v / 3600, v / 60 % 60, v % 60);
	else
		snprintf(out, len, "%lu:%02lu", v / 60, v % 60);
}

int progress_update(const struct tally *t, bool force)
{
	char line[512];
	int64_t now;

	if (!on)
		return -1;
	now = cli_now_ns();
	if (!force && drawn && now - last_draw < REDRAW_NS)
		return (int)((REDRAW_NS - (now - last_draw)) / CLI_NS_PER_MS) + 1;
	last_draw = now;

	double elapsed = (double)(now - t->t0) / (double)CLI_NS_PER_S;
	double rate = elapsed > 0 ? (double)(t->ok + t->refused) / elapsed : 0;
	uint64_t failed = t->refused + t->invalid;
	int n;

	if (total > 0) {
		char tail[256], eta[32];
		double frac = (double)t->done_bytes / (double)total;

		if (frac > 1)
			frac = 1;
		if (frac > 0)
			fmt_duration(eta, sizeof eta, elapsed * (1 - frac) / frac);
		else
			snprintf(eta, sizeof eta, "-:--");
		snprintf(tail, sizeof tail, " %3.0f%%  %" PRIu64 " ok  %" PRIu64 " failed  %.0f/s  ETA %s",
			 frac * 100, t->ok, failed, rate, eta);
		int width = columns() - (int)strlen(tail) - 3;
		if (width > 40)
			width = 40;
		if (width < 5)
			width = 5;
		int fill = (int)(frac * width);
		char bar[48];
		for (int i = 0; i < width; i++)
			bar[i] = i < fill ? '#' : '-';
		bar[width] = '\0';
		n = snprintf(line, sizeof line, "\r[%s]%s\033[K", bar, tail);
	} else {
		n = snprintf(line, sizeof line,
			     "\r%" PRIu64 " sent  %" PRIu64 " ok  %" PRIu64 " failed  %.0f/s\033[K",
			     t->sent, t->ok, failed, rate);
	}
	if (n > 0)
		fwrite(line, 1, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1, stderr);
	drawn = true;
	return (int)(REDRAW_NS / CLI_NS_PER_MS);
}

void progress_clear(void)
{
	if (!drawn)
		return;
	fputs("\r\033[K", stderr);
	drawn = false;
}

void progress_summary(const struct tally *t, const char *ending)
{
	if (opt.quiet)
		return;
	double elapsed = (double)(cli_now_ns() - t->t0) / (double)CLI_NS_PER_S;

	uint64_t failed = t->refused + t->invalid;

	cli_say("sent %" PRIu64 ", ok %" PRIu64 ", failed %" PRIu64 " (refused %" PRIu64
		", invalid %" PRIu64 "), %.2f s, %.1f events/s%s",
		t->sent, t->ok, failed, t->refused, t->invalid, elapsed,
		elapsed > 0 ? (double)t->sent / elapsed : 0.0, ending);
}
