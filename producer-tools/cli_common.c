/* cli_common: configuration, Redis and terminal helpers for the subcommands.
 * Redis is reached as the worker reaches it (redis_connect_blocking: ACL
 * user, sentinels), so a tool follows a failover the way the worker does. */
#include "cli.h"

#include "buf.h"
#include "redis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct config *cli_config(const char *sub, const char *path, const char *brokers, const char *redis)
{
	char err[1024];
	if (!path) {
		fprintf(stderr, "promptyard %s: -c FILE is required\n", sub);
		return NULL;
	}
	struct config *cfg = config_load(path, 0, err, sizeof err);
	if (!cfg) {
		fprintf(stderr, "promptyard %s: %s\n", sub, err);
		return NULL;
	}
	if (brokers) {
		free(cfg->kafka.brokers);
		cfg->kafka.brokers = xstrdup(brokers);
	}
	if (redis && config_override_redis(cfg, redis) != 0) {
		fprintf(stderr, "promptyard %s: --redis: expected HOST:PORT, got \"%s\"\n", sub,
		        redis);
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

redisContext *cli_redis_connect(const struct config *cfg, char *errstr, size_t errstr_size)
{
	struct redis_options opt = redis_options_from_config(cfg);
	return redis_connect_blocking(&opt, errstr, errstr_size);
}

redisContext *cli_redis(const char *sub, const struct config *cfg)
{
	char err[512];
	redisContext *c = cli_redis_connect(cfg, err, sizeof err);
	if (!c)
		fprintf(stderr, "promptyard %s: %s\n", sub, err);
	return c;
}

bool cli_tty(void)
{
	return isatty(STDERR_FILENO) == 1;
}

char *cli_read_file(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f)
		return NULL;
	struct buf b = {0};
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&b, chunk, n);
	bool bad = ferror(f);
	if (f != stdin)
		fclose(f);
	if (bad) {
		buf_free(&b);
		errno = EIO;
		return NULL;
	}
	*len = b.len;
	if (!b.data)
		buf_puts(&b, "");
	return buf_take(&b);
}
