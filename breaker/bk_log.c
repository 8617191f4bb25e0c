#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "bk_log.h"

/* Set once at start-up before the loop runs; read-only afterwards. */
static enum bk_log_level max_level = BK_LOG_INFO;

void bk_log_set_level(enum bk_log_level level)
{
	max_level = level;
}

void bk_log(enum bk_log_level level, const char *fmt, ...)
{
	static const char *const tags[] = {"error", "warning", "info", "debug"};
	struct timespec ts;
	struct tm tm;
	char when[32];
	va_list ap;

	if (level > max_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%06ldZ breakerd %s: ", when, ts.tv_nsec / 1000, tags[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
