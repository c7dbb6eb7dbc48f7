/* redis: hiredis' async API on libuv, with reconnection and a watchdog.
 *
 * hiredis 0.14 (Debian bookworm) has no command timeouts in its async API, so
 * a watchdog timer checks that a connection with commands outstanding keeps
 * answering; one that stalls past timeout_ms is dropped, which hands NULL to
 * every pending callback.
 *
 * Nor does it resolve names asynchronously: redisAsyncConnect() calls
 * getaddrinfo() on the caller's thread, which for a name (the shipped
 * Kubernetes and compose configs use names) can block the loop for as long
 * as DNS takes. So each (re)connect first resolves redis.host with
 * uv_getaddrinfo() on libuv's thread pool, then hands hiredis one numeric
 * address at a time, trying every address in turn; logs keep the name.
 *
 * The libuv adapter is hiredis' own (adapters/libuv.h) but for one thing:
 * libuv reports an error on a socket (a refused connect, a reset) as a poll
 * status, which hiredis' adapter ignores, so a refused connect stayed
 * pending until the watchdog dropped it. Here hiredis is made to look at
 * the socket and finds the error at once.
 *
 * Sentinels. Each sentinel is a connection of its own, a struct redis like
 * this one (so it gets the same lookups, reconnects and timeouts), kept open.
 * The master's address is asked of the first ready sentinel, then the next
 * when one has no answer, before each connect and every second after;
 * SENTINEL's answer is checked with ROLE in the handshake.
 *
 * Replica acknowledgement. A durable call's reply is copied and held until
 * the WAIT sent after it answers (Redis answers in order, so when a WAIT's
 * reply comes, every held reply is one that WAIT covers); the flush handle
 * that sends a turn's batches sends the WAIT last.
 *
 * Files (around redis_int.h): this one is the connection (adapter,
 * lookups, handshake, sentinels, watchdog, life cycle); redis_call.c the
 * commands on it, their replies and the replies held for WAIT;
 * redis_batch.c the batch scripts; redis_blocking.c the blocking
 * connections of the command line and start-up. */
#include "redis.h"

#include "buf.h"
#include "config.h"
#include "log.h"
#include "redis_int.h"
#include "timeutil.h"

#include <hiredis/async.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The master's address is asked again this often while connected. */
#define SENTINEL_POLL_MS 1000

static void connect_now(struct redis *r);

void redis_set_state(struct redis *r, enum redis_state s)
{
	bool was = r->state == R_READY;
	r->state = s;
	bool now = s == R_READY;
	if (was != now && r->state_cb && !r->closing)
		r->state_cb(r->opaque, now);
}

static void on_reconnect_timer(uv_timer_t *t)
{
	connect_now(t->data);
}

/* Connects again after the backoff. With sentinels the master is asked for
 * again first: a lost connection may mean that it moved. */
static void schedule_reconnect(struct redis *r)
{
	if (r->closing)
		return;
	r->master_known = false;
	if (r->backoff_ms < 50)
		r->backoff_ms = 50;
	uv_timer_start(&r->reconnect, on_reconnect_timer, (uint64_t)r->backoff_ms, 0);
	r->backoff_ms = r->backoff_ms * 2 > 2000 ? 2000 : r->backoff_ms * 2;
}

void redis_log_ready(const struct redis *r)
{
	char port[16];
	snprintf(port, sizeof port, "%d", r->opt.port);
	if (r->is_sentinel)
		log_debug("redis sentinel ready", "host", r->host, "port", port, NULL);
	else if (r->master_name)
		log_info("redis ready", "host", r->host, "port", port, "master", r->master_name,
		         NULL);
	else
		log_info("redis ready", "host", r->host, "port", port, NULL);
}

/* ---------------------------------------------------------------- libuv adapter */

struct uv_events {
	redisAsyncContext *ac; /* NULL once hiredis cleaned up */
	uv_poll_t handle;
	int events;
};

static void uv_events_poll(uv_poll_t *handle, int status, int events)
{
	struct uv_events *p = handle->data;
	if (status < 0) {
		/* libuv stopped the handle: hiredis reads the socket's error and
		 * fails the connect or the connection. */
		if (p->ac)
			redisAsyncHandleRead(p->ac);
		if (p->ac && p->events)
			uv_poll_start(&p->handle, p->events, uv_events_poll);
		return;
	}
	if (p->ac && (events & UV_READABLE))
		redisAsyncHandleRead(p->ac);
	if (p->ac && (events & UV_WRITABLE))
		redisAsyncHandleWrite(p->ac);
}

static void uv_events_set(struct uv_events *p, int events)
{
	p->events = events;
	if (events)
		uv_poll_start(&p->handle, events, uv_events_poll);
	else
		uv_poll_stop(&p->handle);
}

static void uv_add_read(void *privdata)
{
	struct uv_events *p = privdata;
	uv_events_set(p, p->events | UV_READABLE);
}

static void uv_del_read(void *privdata)
{
	struct uv_events *p = privdata;
	uv_events_set(p, p->events & ~UV_READABLE);
}

static void uv_add_write(void *privdata)
{
	struct uv_events *p = privdata;
	uv_events_set(p, p->events | UV_WRITABLE);
}

static void uv_del_write(void *privdata)
{
	struct uv_events *p = privdata;
	uv_events_set(p, p->events & ~UV_WRITABLE);
}

static void uv_events_closed(uv_handle_t *handle)
{
	free(handle->data);
}

static void uv_cleanup(void *privdata)
{
	struct uv_events *p = privdata;
	p->ac = NULL;
	uv_close((uv_handle_t *)&p->handle, uv_events_closed);
}

static int uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
	struct uv_events *p = xcalloc(1, sizeof *p);
	if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {
		free(p);
		return REDIS_ERR;
	}
	p->handle.data = p;
	p->ac = ac;
	ac->ev.addRead = uv_add_read;
	ac->ev.delRead = uv_del_read;
	ac->ev.addWrite = uv_add_write;
	ac->ev.delWrite = uv_del_write;
	ac->ev.cleanup = uv_cleanup;
	ac->ev.data = p;
	return REDIS_OK;
}

/* ---------------------------------------------------------------- connection */

/* "redis <what>" or "redis sentinel <what>", with the address. */
static void warn_connection(const struct redis *r, const char *what, const char *reason)
{
	char msg[64], port[16];
	snprintf(msg, sizeof msg, "redis %s%s", r->is_sentinel ? "sentinel " : "", what);
	snprintf(port, sizeof port, "%d", r->opt.port);
	log_warn(msg, "host", r->host, "port", port, reason ? "reason" : NULL, reason, NULL);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;
	(void)status;
	if (r->ac == ac)
		r->ac = NULL;
	r->pending = r->waits = r->unwaited = 0;
	if (r->state != R_DOWN && !r->closing)
		warn_connection(r, "connection lost", NULL);
	redis_set_state(r, R_DOWN);
	redis_release_held(r, false);
	schedule_reconnect(r);
}

/* Gives up on the connection. From the watchdog (not inside a hiredis
 * callback) the context is freed at once: every pending callback gets NULL
 * now, even if the server hangs and would never answer a polite disconnect.
 * A context that never connected gets no disconnect callback from hiredis
 * 0.14, so the state is reset here. Inside a hiredis callback (a failed
 * handshake), the server is answering: a polite disconnect is enough, and
 * the replies still to come are not believed. */
void redis_drop_connection(struct redis *r, const char *why, bool in_callback)
{
	if (!r->ac)
		return;
	if (r->is_sentinel && r->state == R_CONNECTING)
		log_debug("redis sentinel not reached", "host", r->host, "reason", why, NULL);
	else
		warn_connection(r, "connection dropped", why);
	redisAsyncContext *ac = r->ac;
	if (in_callback) {
		r->dropping = true;
		redis_set_state(r, R_DOWN);
		redisAsyncDisconnect(ac);
		return;
	}
	bool connected = r->state != R_CONNECTING;
	r->ac = NULL;
	redis_set_state(r, R_DOWN); /* said so: on_disconnect need not */
	redisAsyncFree(ac);         /* on_disconnect runs only if it had connected */
	if (!connected) {
		r->pending = 0;
		schedule_reconnect(r);
	}
}

/* What a handshake reply answers, other than a script's SCRIPT LOAD (whose
 * privdata is the script's index). */
#define HS_OTHER SIZE_MAX
#define HS_AUTH  (SIZE_MAX - 1)
#define HS_ROLE  (SIZE_MAX - 2)

bool redis_is_master(const redisReply *reply)
{
	return reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
	       reply->element[0]->type == REDIS_REPLY_STRING &&
	       strcmp(reply->element[0]->str, "master") == 0;
}

static void handshake_done(struct redis *r)
{
	r->backoff_ms = 0;
	if (r->wait_n > 0) {
		/* Ready once a WAIT counts enough replicas (on_wait). */
		redis_set_state(r, R_UNACKED);
		redis_send_wait(r);
		return;
	}
	redis_log_ready(r);
	redis_set_state(r, R_READY);
}

static void on_handshake_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct redis *r = ac->data;
	redisReply *reply = reply_;
	size_t what = (size_t)(uintptr_t)privdata;
	r->pending--;
	r->last_progress_ms = time_mono_ms();
	r->suspect = false;
	if (!reply || r->dropping)
		return; /* connection lost (on_disconnect handles it), or being dropped */
	if (reply->type == REDIS_REPLY_ERROR) {
		char msg[256];
		snprintf(msg, sizeof msg, "%.*s", (int)reply->len, reply->str);
		if (what == HS_AUTH && r->is_sentinel) {
			/* Sentinels get the servers' AUTH; one that needs none
			 * refuses it and still answers. */
			log_debug("redis sentinel refused AUTH", "host", r->host, "error", msg,
			          NULL);
		} else {
			if (what == HS_AUTH)
				log_error("redis authentication failed", "host", r->host, "user",
				          r->username ? r->username : "default", "error", msg,
				          NULL);
			else
				log_error("redis handshake failed", "host", r->host, "error", msg,
				          NULL);
			redis_drop_connection(r, "handshake failed", true);
			return;
		}
	} else if (what == HS_ROLE && !redis_is_master(reply)) {
		log_warn("redis server the sentinels named is not the master (a stale answer)",
		         "host", r->host, "master", r->master_name, NULL);
		redis_drop_connection(r, "not the master", true);
		return;
	} else if (what < r->n_scripts && reply->type == REDIS_REPLY_STRING && reply->len == 40) {
		memcpy(r->scripts[what].sha, reply->str, 40);
		r->scripts[what].sha[40] = '\0';
	}
	if (--r->loading == 0)
		handshake_done(r);
}

/* Replies outside the handshake that only keep the bookkeeping: the idle PING
 * and a script reloaded after NOSCRIPT. */
void redis_on_aux_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct redis *r = ac->data;
	redisReply *reply = reply_;
	size_t script = (size_t)(uintptr_t)privdata;
	r->pending--;
	r->last_progress_ms = time_mono_ms();
	r->suspect = false;
	if (reply && script != SIZE_MAX && reply->type == REDIS_REPLY_STRING && reply->len == 40) {
		memcpy(r->scripts[script].sha, reply->str, 40);
		r->scripts[script].sha[40] = '\0';
	}
}

static void handshake_send(struct redis *r, size_t what, int argc, const char **argv,
                           const size_t *lens)
{
	redisAsyncCommandArgv(r->ac, on_handshake_reply, (void *)(uintptr_t)what, argc, argv, lens);
	r->pending++;
	r->loading++;
}

/* AUTH, SELECT, ROLE (with sentinels), the scripts and a PING: ready when
 * the last one answers. */
static void handshake(struct redis *r)
{
	redis_set_state(r, R_LOADING);
	r->loading = 0;
	if (r->password || r->username) {
		const char *argv[3] = {"AUTH"};
		int argc = 1;
		if (r->username)
			argv[argc++] = r->username;
		argv[argc++] = r->password ? r->password : "";
		handshake_send(r, HS_AUTH, argc, argv, NULL);
	}
	if (r->opt.db) {
		char db[16];
		snprintf(db, sizeof db, "%d", r->opt.db);
		const char *argv[] = {"SELECT", db};
		handshake_send(r, HS_OTHER, 2, argv, NULL);
	}
	if (r->master_name) {
		const char *argv[] = {"ROLE"};
		handshake_send(r, HS_ROLE, 1, argv, NULL);
	}
	for (size_t i = 0; i < r->n_scripts; i++) {
		const char *argv[] = {"SCRIPT", "LOAD", r->scripts[i].source};
		handshake_send(r, i, 3, argv, NULL);
	}
	const char *argv[] = {"PING"};
	handshake_send(r, HS_OTHER, 1, argv, NULL);
}

/* The next address of the list at once (a refused one says so quickly),
 * else after the backoff, with a fresh lookup. */
static void connect_next(struct redis *r)
{
	if (r->next_addr && !r->closing)
		uv_timer_start(&r->reconnect, on_reconnect_timer, 0, 0);
	else
		schedule_reconnect(r);
}

static void forget_addrs(struct redis *r)
{
	if (r->addrs)
		uv_freeaddrinfo(r->addrs);
	r->addrs = r->next_addr = NULL;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		if (r->ac == ac)
			r->ac = NULL;
		log_debug("redis connect failed", "host", r->host, "error", ac->errstr, NULL);
		redis_set_state(r, R_DOWN);
		connect_next(r);
		return;
	}
	forget_addrs(r);
	r->last_progress_ms = time_mono_ms();
	handshake(r);
}

static void release(struct redis *r);

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct redis *r = req->data;
	free(req);
	r->resolving = NULL;
	if (r->closing) {
		if (res)
			uv_freeaddrinfo(res);
		release(r);
		return;
	}
	r->open_handles--;
	if (status < 0) {
		log_warn("redis host name not resolved", "host", r->host, "error",
		         uv_strerror(status), NULL);
		schedule_reconnect(r);
		return;
	}
	r->addrs = r->next_addr = res;
	connect_now(r);
}

/* Starts a lookup of the host name on libuv's thread pool. */
static void resolve(struct redis *r)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	char port[16];
	snprintf(port, sizeof port, "%d", r->opt.port);
	r->resolving = xcalloc(1, sizeof *r->resolving);
	r->resolving->data = r;
	r->open_handles++;
	int rc = uv_getaddrinfo(r->loop, r->resolving, on_resolved, r->host, port, &hints);
	if (rc != 0) {
		free(r->resolving);
		r->resolving = NULL;
		r->open_handles--;
		log_warn("redis host name not resolved", "host", r->host, "error", uv_strerror(rc),
		         NULL);
		schedule_reconnect(r);
	}
}

static void ask_sentinels(struct redis *r, size_t from);

/* Connects to the next address of the last lookup, or looks the name up;
 * with sentinels, asks them for the master first. */
static void connect_now(struct redis *r)
{
	if (r->closing || r->ac || r->resolving)
		return;
	if (r->n_sentinels && !r->master_known) {
		ask_sentinels(r, 0);
		return;
	}
	if (!r->next_addr) {
		forget_addrs(r);
		resolve(r);
		return;
	}
	const struct addrinfo *ai = r->next_addr;
	r->next_addr = ai->ai_next;
	char addr[INET6_ADDRSTRLEN] = "";
	if (ai->ai_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, addr, sizeof addr);
	else
		uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, addr, sizeof addr);
	/* A numeric address: hiredis' own getaddrinfo() does no lookup. */
	redisAsyncContext *ac = redisAsyncConnect(addr, r->opt.port);
	if (!ac || ac->err) {
		log_warn("redis connect failed", "host", r->host, "address", addr, "error",
		         ac ? ac->errstr : "out of memory", NULL);
		if (ac)
			redisAsyncFree(ac);
		connect_next(r);
		return;
	}
	ac->data = r;
	if (uv_attach(ac, r->loop) != REDIS_OK) {
		redisAsyncFree(ac);
		connect_next(r);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->ac = ac;
	r->pending = 0;
	r->dropping = false;
	r->warned_unacked = false;
	r->last_progress_ms = time_mono_ms();
	log_debug("redis connecting", "host", r->host, "address", addr, NULL);
	redis_set_state(r, R_CONNECTING);
}

/* ---------------------------------------------------------------- sentinels */

static void on_master_addr(void *opaque, redisReply *reply);

/* A round of queries: asks the first ready sentinel at or after from for the
 * master's address (on_master_addr goes on to the next). A round in which
 * none answers leaves a connected master alone; unconnected, it waits for
 * the backoff (or for a sentinel to turn ready) and starts again. */
static void ask_sentinels(struct redis *r, size_t from)
{
	if (r->asking || r->closing)
		return;
	if (from == 0)
		r->last_ask_ms = time_mono_ms();
	for (size_t i = from; i < r->n_sentinels; i++) {
		if (!redis_ready(r->sentinels[i]))
			continue;
		const char *argv[] = {"SENTINEL", "get-master-addr-by-name", r->master_name};
		r->asking = true;
		r->asked = i;
		redis_command(r->sentinels[i], on_master_addr, r, 3, argv, NULL);
		return;
	}
	if (r->ac)
		return;
	/* Sentinels connect at start as the first round runs: warn only
	 * when that lasts. */
	if (++r->failed_rounds == 4 || r->failed_rounds % 30 == 0)
		log_warn("no sentinel names the redis master: not ready", "master", r->master_name,
		         NULL);
	schedule_reconnect(r);
}

static void on_sentinel_state(void *opaque, bool ready)
{
	struct redis *r = opaque;
	if (ready && !r->closing && !r->ac && !r->resolving && !r->master_known && !r->asking) {
		uv_timer_stop(&r->reconnect);
		connect_now(r);
	}
}

static void set_master(struct redis *r, const char *host, int port)
{
	if (strcmp(r->host, host) != 0) {
		free(r->host);
		r->host = xstrdup(host);
		r->opt.host = r->host;
	}
	r->opt.port = port;
	r->master_known = true;
	forget_addrs(r);
}

static void on_master_addr(void *opaque, redisReply *reply)
{
	struct redis *r = opaque;
	r->asking = false;
	if (r->closing)
		return;
	bool ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
	          reply->element[0]->type == REDIS_REPLY_STRING &&
	          reply->element[1]->type == REDIS_REPLY_STRING;
	int port = ok ? atoi(reply->element[1]->str) : 0;
	if (!ok || port < 1 || port > 65535) {
		char why[256];
		if (!reply)
			snprintf(why, sizeof why, "no reply");
		else if (reply->type == REDIS_REPLY_ERROR)
			snprintf(why, sizeof why, "%.*s", (int)reply->len, reply->str);
		else if (reply->type == REDIS_REPLY_NIL)
			snprintf(why, sizeof why, "it does not monitor this master");
		else
			snprintf(why, sizeof why, "not an address");
		log_debug("redis sentinel named no master", "sentinel",
		          r->sentinels[r->asked]->host, "master", r->master_name, "error", why,
		          NULL);
		ask_sentinels(r, r->asked + 1);
		return;
	}
	const char *host = reply->element[0]->str;
	r->failed_rounds = 0;
	if (r->master_known && port == r->opt.port && strcmp(host, r->host) == 0)
		return; /* where it is connected (or connecting) */
	if (r->ac) {
		char from[300], to[300];
		snprintf(from, sizeof from, "%s:%d", r->host, r->opt.port);
		snprintf(to, sizeof to, "%s:%d", host, port);
		log_warn("redis master moved: following the sentinels", "from", from, "to", to,
		         "master", r->master_name, NULL);
		redis_drop_connection(r, "the sentinels name another master", false);
	}
	set_master(r, host, port);
	uv_timer_stop(&r->reconnect);
	connect_now(r);
}

/* ---------------------------------------------------------------- lifetime */

static void on_watchdog(uv_timer_t *t)
{
	struct redis *r = t->data;
	if (!r->ac)
		return;
	int64_t now = time_mono_ms();
	int64_t idle = now - r->last_progress_ms;
	bool stalled = (r->state == R_CONNECTING || r->pending > 0) && idle > r->opt.timeout_ms;
	if (stalled && !r->suspect) {
		/* Timers run before the loop reads its sockets: after a long turn the
		 * replies may be waiting unread. Judge again at the next tick. */
		r->suspect = true;
		return;
	}
	if (stalled) {
		r->suspect = false;
		redis_drop_connection(r, "no reply within redis.timeout_ms", false);
		return;
	}
	if (r->state == R_UNACKED && r->waits == 0) {
		/* Until the replicas are back: does a WAIT count enough now? */
		redis_send_wait(r);
	} else if (r->state == R_READY && r->pending == 0 && idle > 1000) {
		/* Idle: a PING keeps the liveness view fresh for /readyz. */
		redisAsyncCommand(r->ac, redis_on_aux_reply, (void *)(uintptr_t)SIZE_MAX, "PING");
		r->pending++;
	}
	if (r->n_sentinels && r->state >= R_LOADING && now - r->last_ask_ms >= SENTINEL_POLL_MS)
		ask_sentinels(r, 0); /* has the master moved? */
}

/* Frees r once its handles are closed and no lookup is in flight. */
static void release(struct redis *r)
{
	if (--r->open_handles == 0) {
		for (size_t i = 0; i < r->n_scripts; i++) {
			struct batch *b = r->scripts[i].batch;
			if (b) {
				buf_free(&b->keys);
				buf_free(&b->args);
				free(b->klens);
				free(b->alens);
				free(b->items);
				free(b);
			}
			free(r->scripts[i].owned);
		}
		free(r->scripts);
		forget_addrs(r);
		free(r->host);
		free(r->username);
		if (r->password) {
			explicit_bzero(r->password, strlen(r->password));
			free(r->password);
		}
		free(r->sentinels); /* each frees itself */
		free(r->master_name);
		buf_free(&r->cmd);
		free(r);
	}
}

static void on_timer_closed(uv_handle_t *h)
{
	release(h->data);
}

size_t redis_add_script(struct redis *r, const char *name, const char *source)
{
	r->scripts = xrealloc(r->scripts, (r->n_scripts + 1) * sizeof *r->scripts);
	r->scripts[r->n_scripts] = (struct redis_script){.name = name, .source = source};
	return r->n_scripts++;
}

void redis_set_durable(struct redis *r, size_t script)
{
	r->scripts[script].durable = true;
}

struct redis *redis_new(uv_loop_t *loop, const struct redis_options *opt, redis_state_cb *state_cb,
                        void *opaque)
{
	struct redis *r = xcalloc(1, sizeof *r);
	r->loop = loop;
	r->opt = *opt;
	r->host = xstrdup(opt->host ? opt->host : "");
	r->username = opt->username ? xstrdup(opt->username) : NULL;
	r->password = opt->password ? xstrdup(opt->password) : NULL;
	r->opt.host = r->host;
	r->opt.username = r->username;
	r->opt.password = r->password;
	r->opt.sentinels = NULL; /* borrowed: not kept */
	r->opt.sentinel_master = NULL;
	r->opt.n_sentinels = 0;
	if (r->opt.timeout_ms <= 0)
		r->opt.timeout_ms = 1000;
	r->state_cb = state_cb;
	r->opaque = opaque;
	r->held_tail = &r->held;
	if (opt->n_sentinels) {
		r->master_name = xstrdup(opt->sentinel_master ? opt->sentinel_master : "");
		r->wait_n = opt->min_replicas_acked > 0 ? opt->min_replicas_acked : 0;
		/* Below timeout_ms, so that the watchdog never takes a WAIT that
		 * is waiting for replicas for a stalled server. */
		r->wait_timeout_ms = r->opt.timeout_ms / 2 > 0 ? r->opt.timeout_ms / 2 : 1;
		r->sentinels = xcalloc(opt->n_sentinels, sizeof *r->sentinels);
		for (size_t i = 0; i < opt->n_sentinels; i++) {
			char host[256];
			int port;
			if (redis_split_host_port(opt->sentinels[i], host, sizeof host, &port) !=
			    0) {
				log_error("redis sentinel address is not host:port", "sentinel",
				          opt->sentinels[i], NULL);
				continue;
			}
			struct redis_options so = {.host = host,
			                           .port = port,
			                           .username = opt->username,
			                           .password = opt->password,
			                           .timeout_ms = r->opt.timeout_ms};
			struct redis *s = redis_new(loop, &so, on_sentinel_state, r);
			s->is_sentinel = true;
			r->sentinels[r->n_sentinels++] = s;
		}
	}
	uv_timer_init(loop, &r->reconnect);
	uv_timer_init(loop, &r->watchdog);
	uv_prepare_init(loop, &r->flush);
	r->reconnect.data = r;
	r->watchdog.data = r;
	r->flush.data = r;
	r->open_handles = 3;
	return r;
}

void redis_start(struct redis *r)
{
	for (size_t i = 0; i < r->n_sentinels; i++)
		redis_start(r->sentinels[i]);
	uint64_t period = (uint64_t)(r->opt.timeout_ms / 4 > 10 ? r->opt.timeout_ms / 4 : 10);
	uv_timer_start(&r->watchdog, on_watchdog, period, period);
	connect_now(r);
}

bool redis_ready(const struct redis *r)
{
	return r->state == R_READY;
}

const char *redis_unready_reason(const struct redis *r)
{
	switch (r->state) {
	case R_READY: return NULL;
	case R_UNACKED: return "too few redis replicas acknowledge writes (min_replicas_acked)";
	case R_LOADING: return "redis connecting (loading scripts)";
	case R_CONNECTING: return "redis connecting";
	case R_DOWN: break;
	}
	if (r->n_sentinels && !r->master_known)
		return "no redis master known (asking the sentinels)";
	return "redis unreachable";
}

int redis_pending(const struct redis *r)
{
	return r->pending;
}

void redis_free(struct redis *r)
{
	if (!r)
		return;
	r->closing = true;
	for (size_t i = 0; i < r->n_sentinels; i++)
		redis_free(r->sentinels[i]);
	/* Every callback runs before this returns, so callers may free after:
	 * batched calls not sent yet, then deferred failures, then (freeing
	 * the context) the calls sent. */
	uv_prepare_stop(&r->flush);
	for (struct batch *b = r->to_send, *next; b; b = next) {
		next = b->next;
		b->queued = false;
		b->next = NULL;
		for (size_t i = 0; i < b->n; i++)
			if (b->items[i].cb)
				b->items[i].cb(b->items[i].opaque, NULL);
		b->keys.len = b->args.len = 0;
		b->nk = b->na = b->n = 0;
	}
	r->to_send = NULL;
	redis_fail_laters(r);
	uv_timer_stop(&r->reconnect);
	uv_timer_stop(&r->watchdog);
	/* A lookup not started yet is cancelled; one running ends in its
	 * thread. Either way on_resolved() runs on the loop, and frees. */
	if (r->resolving)
		uv_cancel((uv_req_t *)r->resolving);
	if (r->ac) {
		redisAsyncContext *ac = r->ac;
		r->ac = NULL;
		redisAsyncFree(ac);
	}
	redis_release_held(r, false);
	uv_close((uv_handle_t *)&r->reconnect, on_timer_closed);
	uv_close((uv_handle_t *)&r->watchdog, on_timer_closed);
	uv_close((uv_handle_t *)&r->flush, on_timer_closed);
}
