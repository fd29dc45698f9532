/*
 * log.h - logfmt lines on stderr: `ts=... level=info msg="..." k=v ...`.
 *
 * Any thread. One write(2) per line, so lines from different threads never
 * interleave. The fan-out path never logs; it only counts.
 */
#ifndef SPOUT_LOG_H
#define SPOUT_LOG_H

enum sp_log_level { SP_LOG_DEBUG, SP_LOG_INFO, SP_LOG_WARN, SP_LOG_ERROR };

void sp_log_set_level(enum sp_log_level lvl);
/* Parse "debug|info|warn|error"; returns 0 or -EINVAL. */
int sp_log_parse_level(const char *s, enum sp_log_level *out);

/* <fmt> formats the key=value pairs that follow msg (may be ""). */
void sp_log(enum sp_log_level lvl, const char *msg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A line with no key=value pairs. */
#define sp_log_msg(lvl, msg) sp_log((lvl), (msg), "%s", "")

/* Log an impossible state with file:line and abort. */
#define sp_fatal(msg) sp_fatal_(__FILE__, __LINE__, (msg))
_Noreturn void sp_fatal_(const char *file, int line, const char *msg);

#endif
