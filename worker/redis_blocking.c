/* redis_blocking: Redis options from the config, and the blocking
 * connections of the command line and start-up checks (never on the loop):
 * the master asked of the sentinels, authenticated, the db selected. */
#include "config.h"
#include "redis.h"
#include "redis_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct redis_options redis_options_from_config(const struct config *cfg)
{
	return (struct redis_options){
	        .host = cfg->redis.host,
	        .port = cfg->redis.port,
	        .username = cfg->redis.username,
	        .password = cfg->redis.password,
	        .db = cfg->redis.db,
	        .timeout_ms = cfg->redis.timeout_ms,
	        .sentinels = (const char *const *)cfg->redis.sentinels,
	        .n_sentinels = cfg->redis.n_sentinels,
	        .sentinel_master = cfg->redis.sentinel_master,
	        .min_replicas_acked = cfg->redis.min_replicas_acked,
	};
}

int redis_split_host_port(const char *s, char *host, size_t host_size, int *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s)
		return -1;
	const char *h = s;
	size_t len = (size_t)(colon - s);
	if (*s == '[' && colon[-1] == ']') {
		h++;
		len -= 2;
	}
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end || p < 1 || p > 65535 || len == 0 || len >= host_size)
		return -1;
	memcpy(host, h, len);
	host[len] = '\0';
	*port = (int)p;
	return 0;
}

/* ---------------------------------------------------------------- blocking */

static redisContext *connect_blocking(const char *host, int port, int64_t timeout_ms,
                                      const char *where, char *errstr, size_t errstr_size)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout(host, port, tv);
	if (!c || c->err) {
		snprintf(errstr, errstr_size, "%s: %s", where, c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	return c;
}

/* AUTH with opt's credentials, if any. Returns 0, or -1 with errstr set
 * (the user named, never the password). */
static int auth_blocking(redisContext *c, const struct redis_options *opt, const char *where,
                         char *errstr, size_t errstr_size)
{
	if (!opt->password && !opt->username)
		return 0;
	const char *argv[3] = {"AUTH"};
	int argc = 1;
	if (opt->username)
		argv[argc++] = opt->username;
	argv[argc++] = opt->password ? opt->password : "";
	redisReply *reply = redisCommandArgv(c, argc, argv, NULL);
	int rc = 0;
	if (!reply || reply->type == REDIS_REPLY_ERROR) {
		snprintf(errstr, errstr_size, "%s: authentication failed for user \"%s\": %s",
		         where, opt->username ? opt->username : "default",
		         reply ? reply->str : c->errstr);
		rc = -1;
	}
	if (reply)
		freeReplyObject(reply);
	return rc;
}

/* Asks the sentinels in turn for the master's address. Returns 0 with host
 * and port set, or -1 with errstr saying what each sentinel answered. */
static int sentinel_lookup(const struct redis_options *opt, char *host, size_t host_size, int *port,
                           char *errstr, size_t errstr_size)
{
	struct buf why = {0};
	int rc = -1;
	for (size_t i = 0; i < opt->n_sentinels && rc != 0; i++) {
		char shost[256], err[512];
		int sport;
		redisReply *reply = NULL;
		redisContext *c = NULL;
		if (redis_split_host_port(opt->sentinels[i], shost, sizeof shost, &sport) != 0) {
			snprintf(err, sizeof err, ": not host:port");
			goto next;
		}
		c = connect_blocking(shost, sport, opt->timeout_ms, "", err, sizeof err);
		if (!c)
			goto next;
		/* The servers' AUTH; a sentinel that needs none refuses it. */
		if (auth_blocking(c, opt, "", err, sizeof err) != 0 && c->err)
			goto next;
		reply = redisCommand(c, "SENTINEL get-master-addr-by-name %s",
		                     opt->sentinel_master);
		if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
		    reply->element[0]->type == REDIS_REPLY_STRING &&
		    reply->element[1]->type == REDIS_REPLY_STRING &&
		    reply->element[0]->len < host_size && atoi(reply->element[1]->str) > 0) {
			memcpy(host, reply->element[0]->str, reply->element[0]->len + 1);
			*port = atoi(reply->element[1]->str);
			rc = 0;
		} else if (!reply) {
			snprintf(err, sizeof err, ": %s", c->errstr);
		} else if (reply->type == REDIS_REPLY_ERROR) {
			snprintf(err, sizeof err, ": %s", reply->str);
		} else {
			snprintf(err, sizeof err, ": does not know the master");
		}
	next:
		if (rc != 0)
			buf_printf(&why, "%s%s%s", why.len ? "; " : "", opt->sentinels[i], err);
		if (reply)
			freeReplyObject(reply);
		if (c)
			redisFree(c);
	}
	if (rc != 0)
		snprintf(errstr, errstr_size, "no sentinel named the redis master \"%s\" (%s)",
		         opt->sentinel_master, why.len ? why.data : "no sentinels");
	buf_free(&why);
	return rc;
}

redisContext *redis_connect_blocking(const struct redis_options *opt, char *errstr,
                                     size_t errstr_size)
{
	char master[256], where[400];
	const char *host = opt->host;
	int port = opt->port;
	redisReply *reply = NULL;
	redisContext *c = NULL;
	if (opt->n_sentinels) {
		if (sentinel_lookup(opt, master, sizeof master, &port, errstr, errstr_size) != 0)
			return NULL;
		host = master;
		snprintf(where, sizeof where, "redis %s:%d (master \"%s\")", host, port,
		         opt->sentinel_master);
	} else {
		snprintf(where, sizeof where, "redis %s:%d", host, port);
	}
	c = connect_blocking(host, port, opt->timeout_ms, where, errstr, errstr_size);
	if (!c || auth_blocking(c, opt, where, errstr, errstr_size) != 0)
		goto fail;
	if (opt->db) {
		reply = redisCommand(c, "SELECT %d", opt->db);
		if (!reply || reply->type == REDIS_REPLY_ERROR) {
			snprintf(errstr, errstr_size, "%s: cannot select db %d: %s", where, opt->db,
			         reply ? reply->str : c->errstr);
			goto fail;
		}
		freeReplyObject(reply);
		reply = NULL;
	}
	if (opt->n_sentinels) {
		reply = redisCommand(c, "ROLE");
		if (!reply || !redis_is_master(reply)) {
			const char *role =
			        !reply                             ? c->errstr
			        : reply->type == REDIS_REPLY_ERROR ? reply->str
			        : reply->type == REDIS_REPLY_ARRAY && reply->elements &&
			                        reply->element[0]->type == REDIS_REPLY_STRING
			                ? reply->element[0]->str
			                : "no role";
			snprintf(errstr, errstr_size,
			         "%s: not the master (a stale answer of the sentinels): %s", where,
			         role);
			goto fail;
		}
		freeReplyObject(reply);
	}
	return c;
fail:
	if (reply)
		freeReplyObject(reply);
	if (c)
		redisFree(c);
	return NULL;
}

int redis_probe(const struct redis_options *opt, char *errstr, size_t errstr_size)
{
	redisContext *c = redis_connect_blocking(opt, errstr, errstr_size);
	if (!c)
		return -1;
	redisReply *reply = redisCommand(c, "PING");
	int rc = 0;
	if (!reply || reply->type == REDIS_REPLY_ERROR) {
		snprintf(errstr, errstr_size, "redis: PING: %s", reply ? reply->str : c->errstr);
		rc = -1;
	}
	if (reply)
		freeReplyObject(reply);
	redisFree(c);
	return rc;
}
