/* log: one JSON object per line on stderr: {"ts","level","msg", fields...}.
 *
 * Fields are given as alternating key/value C strings ending with NULL, e.g.
 *   log_info("job done", "id", id, "model", name, NULL);
 * Values are written as JSON strings. The level is checked before anything is
 * formatted. Never pass a prompt, a completion or a secret. */
#ifndef PROMPTYARD_LOG_H
#define PROMPTYARD_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

extern enum log_level log_min_level;

/* Returns 0 and sets *out for "debug", "info", "warn", "error", "off"; else -1. */
int log_level_parse(const char *name, enum log_level *out);
void log_set_level(enum log_level level);
/* A short name put in every line as "component" (e.g. "worker", "cli"). */
void log_set_component(const char *name);

void log_msg(enum log_level level, const char *msg, ...) __attribute__((sentinel));

#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_min_level <= LOG_DEBUG)                                                    \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)
#define log_info(...)                                                                              \
	do {                                                                                       \
		if (log_min_level <= LOG_INFO)                                                     \
			log_msg(LOG_INFO, __VA_ARGS__);                                            \
	} while (0)
#define log_warn(...)                                                                              \
	do {                                                                                       \
		if (log_min_level <= LOG_WARN)                                                     \
			log_msg(LOG_WARN, __VA_ARGS__);                                            \
	} while (0)
#define log_error(...)                                                                             \
	do {                                                                                       \
		if (log_min_level <= LOG_ERROR)                                                    \
			log_msg(LOG_ERROR, __VA_ARGS__);                                           \
	} while (0)

#endif
