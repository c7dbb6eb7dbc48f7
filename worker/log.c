/* log: JSON lines on stderr, written with one write(2) each so that lines from
 * librdkafka's threads and the loop never interleave. */
#include "log.h"

#include "buf.h"
#include "timeutil.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

enum log_level log_min_level = LOG_INFO;
static const char *component = "promptyard";

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

int log_level_parse(const char *name, enum log_level *out)
{
	for (int i = 0; i <= LOG_OFF; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(name, "warning") == 0) {
		*out = LOG_WARN;
		return 0;
	}
	return -1;
}

void log_set_level(enum log_level level)
{
	log_min_level = level;
}

void log_set_component(const char *name)
{
	component = name;
}

void log_msg(enum log_level level, const char *msg, ...)
{
	if (level < log_min_level || level >= LOG_OFF)
		return;
	char ts[40];
	time_format_rfc3339(time_now_ms(), ts, sizeof ts);
	struct buf b = {0};
	buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts, level_names[level]);
	buf_json_str(&b, component, strlen(component));
	buf_puts(&b, ",\"msg\":");
	buf_json_str(&b, msg, strlen(msg));
	va_list ap;
	va_start(ap, msg);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		buf_puts(&b, ",");
		buf_json_str(&b, k, strlen(k));
		buf_puts(&b, ":");
		if (v)
			buf_json_str(&b, v, strlen(v));
		else
			buf_puts(&b, "null");
	}
	va_end(ap);
	buf_puts(&b, "}\n");
	ssize_t off = 0;
	while ((size_t)off < b.len) {
		ssize_t n = write(STDERR_FILENO, b.data + off, b.len - (size_t)off);
		if (n <= 0)
			break;
		off += n;
	}
	buf_free(&b);
}
