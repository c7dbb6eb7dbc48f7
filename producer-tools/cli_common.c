/* cli_common: configuration, Redis and terminal helpers for the subcommands. */
#include "cli.h"

#include "buf.h"

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
	struct timeval tv = {.tv_sec = cfg->redis.timeout_ms / 1000,
	                     .tv_usec = (cfg->redis.timeout_ms % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout(cfg->redis.host, cfg->redis.port, tv);
	redisReply *r = NULL;
	if (!c || c->err) {
		snprintf(errstr, errstr_size, "redis %s:%d: %s", cfg->redis.host, cfg->redis.port,
		         c ? c->errstr : "out of memory");
		goto fail;
	}
	redisSetTimeout(c, tv);
	if (cfg->redis.password) {
		r = redisCommand(c, "AUTH %s", cfg->redis.password);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			snprintf(errstr, errstr_size, "redis %s:%d: authentication failed",
			         cfg->redis.host, cfg->redis.port);
			goto fail;
		}
		freeReplyObject(r);
		r = NULL;
	}
	if (cfg->redis.db) {
		r = redisCommand(c, "SELECT %d", cfg->redis.db);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			snprintf(errstr, errstr_size, "redis %s:%d: cannot select db %d",
			         cfg->redis.host, cfg->redis.port, cfg->redis.db);
			goto fail;
		}
		freeReplyObject(r);
	}
	return c;
fail:
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	return NULL;
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
