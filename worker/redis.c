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
 * that sends a turn's batches sends the WAIT last. */
#include "redis.h"

#include "buf.h"
#include "config.h"
#include "log.h"
#include "timeutil.h"

#include <hiredis/async.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The master's address is asked again this often while connected. */
#define SENTINEL_POLL_MS 1000

/* R_UNACKED: connected to the master, which has fewer replicas than
 * min_replicas_acked acknowledging (not ready). */
enum redis_state { R_DOWN, R_CONNECTING, R_LOADING, R_UNACKED, R_READY };

/* A Lua script and, once loaded, its SHA1. */
struct redis_script {
	const char *name;
	const char *source;
	char *owned; /* source, when it was made here (a batch form) */
	char sha[41];
	struct batch *batch; /* a batch script's calls of this loop turn */
	bool durable;        /* its callbacks wait for WAIT (redis_set_durable) */
};

/* Calls of a batch script gathered during one loop turn (see
 * redis_eval_batch): every call's keys back to back, and for each call
 * "<its key count>", "<its argument count>" and its arguments. */
struct batch_item {
	redis_reply_cb *cb;
	void *opaque;
};
struct batch {
	size_t script;
	struct buf keys, args; /* the bytes, back to back */
	size_t *klens, *alens;
	size_t nk, na, cap_k, cap_a;
	struct batch_item *items;
	size_t n, cap;
	bool queued; /* on the redis' list of batches to send */
	struct batch *next;
};

struct held;

struct redis {
	uv_loop_t *loop;
	struct redis_options opt;
	char *host; /* the server's name; with sentinels, the master's */
	char *username;
	char *password;
	bool is_sentinel;             /* a connection to a sentinel, made by its parent */
	struct redis_script *scripts; /* new */
	size_t n_scripts;
	redis_state_cb *state_cb;
	void *opaque;

	/* The name's addresses: a lookup in flight, or the addresses of the last
	 * lookup not tried yet (the list is dropped once one connects, so that a
	 * reconnect looks the name up again). */
	uv_getaddrinfo_t *resolving;
	struct addrinfo *addrs, *next_addr;

	redisAsyncContext *ac;
	enum redis_state state;
	int pending;              /* commands sent on ac, not answered */
	int loading;              /* handshake replies still expected */
	int64_t last_progress_ms; /* last reply or connect */
	bool suspect;             /* the watchdog saw no progress once */
	int64_t backoff_ms;
	uv_timer_t reconnect;
	uv_timer_t watchdog;
	bool closing;
	int open_handles;     /* the three handles, and a lookup in flight */
	struct later *laters; /* deferred failures not yet delivered */
	uv_prepare_t flush;   /* sends the batches (and a WAIT) before the loop waits */
	struct batch *to_send;
	bool dropping;       /* dropped politely: its later replies are not believed */
	bool warned_unacked; /* said so when the replicas stopped acknowledging */

	/* With sentinels: one connection to each; the master's name and
	 * whether host and opt.port hold its address. */
	struct redis **sentinels; /* new, each */
	size_t n_sentinels;
	char *master_name;
	bool master_known;
	bool asking;         /* a SENTINEL query in flight */
	size_t asked;        /* the sentinel it went to */
	int64_t last_ask_ms; /* when the last round of queries began */
	int failed_rounds;   /* in a row, while no master is known */

	/* Replica acknowledgement (min_replicas_acked with sentinels). */
	int wait_n;              /* 0: off */
	int64_t wait_timeout_ms; /* each WAIT's own timeout */
	int unwaited;            /* durable calls sent after the last WAIT */
	int waits;               /* WAITs in flight */
	struct held *held;       /* durable replies waiting for their WAIT, in order */
	struct held **held_tail;

	struct buf cmd; /* send_call's command in RESP, reused */
};

/* A durable call's reply, copied, until the WAIT after it answers. */
struct held {
	struct call *call;
	redisReply *reply;
	struct held *next;
};

/* What a command carries through hiredis. */
struct call {
	struct redis *r;
	redis_reply_cb *cb;
	void *opaque;
	/* For redis_eval's one reload on NOSCRIPT: the command, copied into
	 * one block that argv points into. */
	size_t script;
	int nkeys, argc;
	char *block;
	const char **argv;
	size_t *argvlen;
	bool retried;
	bool durable; /* its reply waits for a WAIT */
};

static void connect_now(struct redis *r);

static void set_state(struct redis *r, enum redis_state s)
{
	bool was = r->state == R_READY;
	r->state = s;
	bool now = s == R_READY;
	if (was != now && r->state_cb && !r->closing)
		r->state_cb(r->opaque, now);
}

static void call_free(struct call *c)
{
	free(c->block);
	free(c->argv);
	free(c->argvlen);
	free(c);
}

/* Runs cb with NULL from the loop, never from the caller's stack. */
struct later {
	uv_timer_t timer;
	struct call *call;
	struct later *next, *prev;
};

static void later_closed(uv_handle_t *h)
{
	free(h);
}

static void later_fire(uv_timer_t *t)
{
	struct later *l = (struct later *)t;
	struct redis *r = l->call->r;
	if (l->prev)
		l->prev->next = l->next;
	else
		r->laters = l->next;
	if (l->next)
		l->next->prev = l->prev;
	if (l->call->cb)
		l->call->cb(l->call->opaque, NULL);
	call_free(l->call);
	uv_close((uv_handle_t *)t, later_closed);
}

static void fail_later(struct redis *r, struct call *c)
{
	struct later *l = xcalloc(1, sizeof *l);
	l->call = c;
	l->next = r->laters;
	if (l->next)
		l->next->prev = l;
	r->laters = l;
	uv_timer_init(r->loop, &l->timer);
	uv_timer_start(&l->timer, later_fire, 0, 0);
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

/* ---------------------------------------------------------------- replica acknowledgement */

redisReply *redis_reply_copy(const redisReply *src)
{
	/* Allocated as hiredis allocates, so that freeReplyObject() frees it. */
	redisReply *r = xcalloc(1, sizeof *r);
	r->type = src->type;
	r->integer = src->integer;
	r->len = src->len;
	if (src->str) {
		r->str = xmalloc(src->len + 1);
		memcpy(r->str, src->str, src->len);
		r->str[src->len] = '\0';
	}
	if (src->elements) {
		r->element = xcalloc(src->elements, sizeof *r->element);
		r->elements = src->elements;
		for (size_t i = 0; i < src->elements; i++)
			r->element[i] = redis_reply_copy(src->element[i]);
	}
	return r;
}

static void hold(struct redis *r, struct call *c, const redisReply *reply)
{
	struct held *h = xmalloc(sizeof *h);
	h->call = c;
	h->reply = redis_reply_copy(reply);
	h->next = NULL;
	*r->held_tail = h;
	r->held_tail = &h->next;
}

/* Hands every held reply to its callback, or NULL when acked is false (the
 * write may not survive a failover: the caller retries). */
static void release_held(struct redis *r, bool acked)
{
	struct held *h = r->held;
	r->held = NULL;
	r->held_tail = &r->held;
	while (h) {
		struct held *next = h->next;
		if (h->call->cb)
			h->call->cb(h->call->opaque, acked ? h->reply : NULL);
		freeReplyObject(h->reply);
		call_free(h->call);
		free(h);
		h = next;
	}
}

static void log_ready(const struct redis *r)
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

static void drop_connection(struct redis *r, const char *why, bool in_callback);

static void on_wait(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct redis *r = ac->data;
	redisReply *reply = reply_;
	(void)privdata;
	r->pending--;
	r->waits--;
	r->last_progress_ms = time_mono_ms();
	r->suspect = false;
	bool acked = reply && !r->dropping && reply->type == REDIS_REPLY_INTEGER &&
	             reply->integer >= r->wait_n;
	if (reply && !r->dropping && reply->type == REDIS_REPLY_ERROR) {
		/* "WAIT cannot be used with replica instances": demoted. */
		char msg[256];
		snprintf(msg, sizeof msg, "%.*s", (int)reply->len, reply->str);
		log_warn("redis WAIT failed", "host", r->host, "error", msg, NULL);
		drop_connection(r, "WAIT failed", true);
	} else if (reply && !r->dropping && !acked) {
		if (!r->warned_unacked) {
			char got[24], want[16];
			snprintf(got, sizeof got, "%lld", (long long)reply->integer);
			snprintf(want, sizeof want, "%d", r->wait_n);
			log_warn(
			        "redis replicas do not acknowledge writes: not ready, ledger steps "
			        "are retried",
			        "host", r->host, "replicas", got, "min_replicas_acked", want, NULL);
			r->warned_unacked = true;
		}
		set_state(r, R_UNACKED);
	} else if (acked && r->state == R_UNACKED) {
		r->warned_unacked = false;
		log_ready(r);
		set_state(r, R_READY);
	}
	release_held(r, acked);
}

/* WAIT for the replicas: it covers every write sent before it. */
static void send_wait(struct redis *r)
{
	char n[16], t[24];
	size_t n_len = (size_t)snprintf(n, sizeof n, "%d", r->wait_n);
	size_t t_len = (size_t)snprintf(t, sizeof t, "%lld", (long long)r->wait_timeout_ms);
	const char *argv[] = {"WAIT", n, t};
	size_t lens[] = {4, n_len, t_len};
	if (redisAsyncCommandArgv(r->ac, on_wait, NULL, 3, argv, lens) != REDIS_OK)
		return; /* disconnecting: the held replies get NULL then */
	r->pending++;
	r->waits++;
	r->unwaited = 0;
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
	set_state(r, R_DOWN);
	release_held(r, false);
	schedule_reconnect(r);
}

/* Gives up on the connection. From the watchdog (not inside a hiredis
 * callback) the context is freed at once: every pending callback gets NULL
 * now, even if the server hangs and would never answer a polite disconnect.
 * A context that never connected gets no disconnect callback from hiredis
 * 0.14, so the state is reset here. Inside a hiredis callback (a failed
 * handshake), the server is answering: a polite disconnect is enough, and
 * the replies still to come are not believed. */
static void drop_connection(struct redis *r, const char *why, bool in_callback)
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
		set_state(r, R_DOWN);
		redisAsyncDisconnect(ac);
		return;
	}
	bool connected = r->state != R_CONNECTING;
	r->ac = NULL;
	set_state(r, R_DOWN); /* said so: on_disconnect need not */
	redisAsyncFree(ac);   /* on_disconnect runs only if it had connected */
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

static bool is_master(const redisReply *reply)
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
		set_state(r, R_UNACKED);
		send_wait(r);
		return;
	}
	log_ready(r);
	set_state(r, R_READY);
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
			drop_connection(r, "handshake failed", true);
			return;
		}
	} else if (what == HS_ROLE && !is_master(reply)) {
		log_warn("redis server the sentinels named is not the master (a stale answer)",
		         "host", r->host, "master", r->master_name, NULL);
		drop_connection(r, "not the master", true);
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
static void on_aux_reply(redisAsyncContext *ac, void *reply_, void *privdata)
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
	set_state(r, R_LOADING);
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
		set_state(r, R_DOWN);
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
	set_state(r, R_CONNECTING);
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
		drop_connection(r, "the sentinels name another master", false);
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
		drop_connection(r, "no reply within redis.timeout_ms", false);
		return;
	}
	if (r->state == R_UNACKED && r->waits == 0) {
		/* Until the replicas are back: does a WAIT count enough now? */
		send_wait(r);
	} else if (r->state == R_READY && r->pending == 0 && idle > 1000) {
		/* Idle: a PING keeps the liveness view fresh for /readyz. */
		redisAsyncCommand(r->ac, on_aux_reply, (void *)(uintptr_t)SIZE_MAX, "PING");
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

static int split_host_port(const char *s, char *host, size_t host_size, int *port);

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
			if (split_host_port(opt->sentinels[i], host, sizeof host, &port) != 0) {
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

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata);

static void on_flush(uv_prepare_t *h);

/* Writes "<prefix><n>\r\n" at p; returns the end. */
static char *resp_line(char *p, char prefix, size_t n)
{
	char digits[20], *d = digits + sizeof digits;
	do {
		*--d = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	*p++ = prefix;
	memcpy(p, d, (size_t)(digits + sizeof digits - d));
	p += digits + sizeof digits - d;
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

void redis_format_command(struct buf *out, int argc, const char **argv, const size_t *argvlen)
{
	/* Sized, then written in place: a batch carries thousands of short
	 * arguments, and an append per piece was most of the cost. */
	enum { RESP_LINE_MAX = 1 + 20 + 2 }; /* "$" or "*", a length, CR LF */
	size_t total = RESP_LINE_MAX;
	for (int i = 0; i < argc; i++)
		total += RESP_LINE_MAX + (argvlen ? argvlen[i] : strlen(argv[i])) + 2;
	buf_reset(out);
	buf_reserve(out, total);
	char *p = resp_line(out->data, '*', (size_t)argc);
	for (int i = 0; i < argc; i++) {
		size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
		p = resp_line(p, '$', len);
		memcpy(p, argv[i], len);
		p += len;
		*p++ = '\r';
		*p++ = '\n';
	}
	*p = '\0';
	out->len = (size_t)(p - out->data);
}

static void send_call(struct redis *r, struct call *c, int argc, const char **argv,
                      const size_t *argvlen)
{
	if (r->state == R_READY && r->ac)
		redis_format_command(&r->cmd, argc, argv, argvlen);
	if (r->state != R_READY || !r->ac ||
	    redisAsyncFormattedCommand(r->ac, on_reply, c, r->cmd.data, r->cmd.len) != REDIS_OK) {
		fail_later(r, c);
		return;
	}
	r->pending++;
	if (c->durable) {
		/* The turn's WAIT goes out with the batches, before the loop waits. */
		r->unwaited++;
		uv_prepare_start(&r->flush, on_flush);
	}
}

static void send_eval(struct redis *r, struct call *c)
{
	/* A batch may have thousands of arguments: off the stack then. */
	const char *argv_small[64];
	size_t lens_small[64];
	size_t n = (size_t)c->argc + 3;
	const char **argv = n <= 64 ? argv_small : xmalloc(n * sizeof *argv);
	size_t *lens = n <= 64 ? lens_small : xmalloc(n * sizeof *lens);
	char nkeys[16];
	c->durable = r->wait_n > 0 && r->scripts[c->script].durable;
	argv[0] = "EVALSHA";
	lens[0] = 7;
	argv[1] = r->scripts[c->script].sha;
	lens[1] = 40;
	lens[2] = (size_t)snprintf(nkeys, sizeof nkeys, "%d", c->nkeys);
	argv[2] = nkeys;
	for (int i = 0; i < c->argc; i++) {
		argv[i + 3] = c->argv[i];
		lens[i + 3] = c->argvlen[i];
	}
	send_call(r, c, c->argc + 3, argv, lens);
	if (argv != argv_small) {
		free(argv);
		free(lens);
	}
}

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct redis *r = ac->data;
	struct call *c = privdata;
	redisReply *reply = reply_;
	r->pending--;
	r->last_progress_ms = time_mono_ms();
	r->suspect = false;
	if (reply && reply->type == REDIS_REPLY_ERROR && c->argv && !c->retried &&
	    strncmp(reply->str, "NOSCRIPT", 8) == 0) {
		/* SCRIPT FLUSH or a restart without persistence: load and retry once. */
		c->retried = true;
		const char *argv[] = {"SCRIPT", "LOAD", r->scripts[c->script].source};
		size_t lens[] = {6, 4, strlen(r->scripts[c->script].source)};
		redisAsyncCommandArgv(ac, on_aux_reply, (void *)(uintptr_t)c->script, 3, argv,
		                      lens);
		r->pending++;
		send_eval(r, c);
		return;
	}
	if (reply && reply->type == REDIS_REPLY_ERROR && r->n_sentinels &&
	    strncmp(reply->str, "READONLY", 8) == 0) {
		/* A master demoted under the connection: find the new one. */
		drop_connection(r, "the server turned into a replica", true);
		reply = NULL;
	}
	if (reply && c->durable) {
		if (!r->dropping) {
			hold(r, c, reply); /* until the WAIT after it answers */
			return;
		}
		reply = NULL; /* no WAIT will vouch for it */
	}
	if (c->cb)
		c->cb(c->opaque, reply);
	call_free(c);
}

void redis_command(struct redis *r, redis_reply_cb *cb, void *opaque, int argc, const char **argv,
                   const size_t *argvlen)
{
	struct call *c = xcalloc(1, sizeof *c);
	c->r = r;
	c->cb = cb;
	c->opaque = opaque;
	send_call(r, c, argc, argv, argvlen);
}

/* A call of script with room for argc arguments of total bytes in one block
 * (argv and argvlen set by the caller). */
static struct call *eval_call(struct redis *r, size_t script, redis_reply_cb *cb, void *opaque,
                              int nkeys, int argc, size_t total)
{
	struct call *c = xcalloc(1, sizeof *c);
	c->r = r;
	c->cb = cb;
	c->opaque = opaque;
	c->script = script;
	c->nkeys = nkeys;
	c->argc = argc;
	c->block = xmalloc(total ? total : 1);
	c->argv = xcalloc((size_t)argc ? (size_t)argc : 1, sizeof *c->argv);
	c->argvlen = xcalloc((size_t)argc ? (size_t)argc : 1, sizeof *c->argvlen);
	return c;
}

void redis_eval(struct redis *r, size_t script, redis_reply_cb *cb, void *opaque, int nkeys,
                int argc, const char **argv, const size_t *argvlen)
{
	size_t total = 0;
	for (int i = 0; i < argc; i++)
		total += argvlen ? argvlen[i] : strlen(argv[i]);
	struct call *c = eval_call(r, script, cb, opaque, nkeys, argc, total);
	/* Kept for a NOSCRIPT retry. */
	char *p = c->block;
	for (int i = 0; i < argc; i++) {
		size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
		memcpy(p, argv[i], len);
		c->argv[i] = p;
		c->argvlen[i] = len;
		p += len;
	}
	send_eval(r, c);
}

/* ---------------------------------------------------------------- batches */

/* The batch form of a script: its text becomes a function run once per call
 * with that call's KEYS and ARGV. The batch's KEYS are every call's keys
 * back to back; ARGV[1] the number of calls, then per call its key count,
 * its argument count and its arguments. The reply is the array of the
 * calls' replies; a call that raises an error gets it as its element. */
static const char batch_head[] = "local function step(KEYS, ARGV)\n";
static const char batch_tail[] = "\nend\n"
                                 "local out, k, a = {}, 0, 2\n"
                                 "for i = 1, tonumber(ARGV[1]) do\n"
                                 "  local nk, na = tonumber(ARGV[a]), tonumber(ARGV[a + 1])\n"
                                 "  local keys, args = {}, {}\n"
                                 "  for j = 1, nk do keys[j] = KEYS[k + j] end\n"
                                 "  for j = 1, na do args[j] = ARGV[a + 1 + j] end\n"
                                 "  k, a = k + nk, a + 2 + na\n"
                                 "  local ok, res = pcall(step, keys, args)\n"
                                 "  if not ok then\n"
                                 "    if type(res) == 'table' and res.err then out[i] = res\n"
                                 "    else out[i] = redis.error_reply(tostring(res)) end\n"
                                 "  elseif res == nil then out[i] = false\n"
                                 "  else out[i] = res end\n"
                                 "end\n"
                                 "return out\n";

/* Calls flushed at once when a batch reaches this many, or this many bytes. */
#define BATCH_MAX_CALLS 512
#define BATCH_MAX_BYTES (1 << 20)

size_t redis_add_batch_script(struct redis *r, const char *name, const char *source)
{
	struct buf text = {0};
	buf_puts(&text, batch_head);
	buf_puts(&text, source);
	buf_puts(&text, batch_tail);
	size_t id = redis_add_script(r, name, text.data);
	struct redis_script *s = &r->scripts[id];
	s->owned = buf_take(&text);
	s->source = s->owned;
	s->batch = xcalloc(1, sizeof *s->batch);
	s->batch->script = id;
	return id;
}

/* What one sent batch carries to its reply. */
struct batch_call {
	size_t n;
	struct batch_item items[];
};

static void on_batch_reply(void *opaque, redisReply *reply)
{
	struct batch_call *bc = opaque;
	bool split = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == bc->n;
	if (reply && reply->type == REDIS_REPLY_ARRAY && !split)
		log_warn("redis batch reply has the wrong length", NULL);
	for (size_t i = 0; i < bc->n; i++)
		if (bc->items[i].cb)
			bc->items[i].cb(bc->items[i].opaque, split ? reply->element[i] : reply);
	free(bc);
}

static void batch_send(struct redis *r, struct batch *b)
{
	if (b->n == 0)
		return;
	char count[24];
	size_t count_len = (size_t)snprintf(count, sizeof count, "%zu", b->n);
	struct batch_call *bc = xmalloc(sizeof *bc + b->n * sizeof bc->items[0]);
	bc->n = b->n;
	memcpy(bc->items, b->items, b->n * sizeof bc->items[0]);
	int argc = (int)(b->nk + 1 + b->na);
	struct call *c = eval_call(r, b->script, on_batch_reply, bc, (int)b->nk, argc,
	                           b->keys.len + count_len + b->args.len);
	char *p = c->block;
	int k = 0;
	size_t off = 0;
	memcpy(p, b->keys.data, b->keys.len);
	for (size_t i = 0; i < b->nk; i++, k++) {
		c->argv[k] = p + off;
		c->argvlen[k] = b->klens[i];
		off += b->klens[i];
	}
	p += b->keys.len;
	memcpy(p, count, count_len);
	c->argv[k] = p;
	c->argvlen[k++] = count_len;
	p += count_len;
	memcpy(p, b->args.data, b->args.len);
	off = 0;
	for (size_t i = 0; i < b->na; i++, k++) {
		c->argv[k] = p + off;
		c->argvlen[k] = b->alens[i];
		off += b->alens[i];
	}
	b->keys.len = b->args.len = 0;
	b->nk = b->na = b->n = 0;
	send_eval(r, c);
}

static void on_flush(uv_prepare_t *h)
{
	struct redis *r = h->data;
	struct batch *b = r->to_send;
	r->to_send = NULL;
	while (b) {
		struct batch *next = b->next;
		b->queued = false;
		b->next = NULL;
		batch_send(r, b);
		b = next;
	}
	/* Last: one WAIT covers every durable write of the turn. */
	if (r->unwaited > 0 && r->ac && !r->dropping)
		send_wait(r);
	uv_prepare_stop(h);
}

static void grow_lens(size_t **lens, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	*lens = xrealloc(*lens, c * sizeof **lens);
	*cap = c;
}

/* Appends n in decimal to b as the next argument of batch b. */
static void batch_count(struct batch *b, size_t n)
{
	size_t before = b->args.len;
	buf_i64(&b->args, (int64_t)n);
	b->alens[b->na++] = b->args.len - before;
}

void redis_eval_batch(struct redis *r, size_t script, redis_reply_cb *cb, void *opaque, int nkeys,
                      int argc, const char **argv, const size_t *argvlen)
{
	struct batch *b = r->scripts[script].batch;
	if (!b) {
		redis_eval(r, script, cb, opaque, nkeys, argc, argv, argvlen);
		return;
	}
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->items = xrealloc(b->items, b->cap * sizeof *b->items);
	}
	b->items[b->n++] = (struct batch_item){cb, opaque};
	grow_lens(&b->klens, &b->cap_k, b->nk + (size_t)nkeys);
	grow_lens(&b->alens, &b->cap_a, b->na + 2 + (size_t)(argc - nkeys));
	for (int i = 0; i < argc; i++) {
		size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
		if (i < nkeys) {
			buf_append(&b->keys, argv[i], len);
			b->klens[b->nk++] = len;
			continue;
		}
		if (i == nkeys) {
			batch_count(b, (size_t)nkeys);
			batch_count(b, (size_t)(argc - nkeys));
		}
		buf_append(&b->args, argv[i], len);
		b->alens[b->na++] = len;
	}
	if (argc == nkeys) {
		batch_count(b, (size_t)nkeys);
		batch_count(b, 0);
	}
	if (b->n >= BATCH_MAX_CALLS || b->keys.len + b->args.len >= BATCH_MAX_BYTES) {
		batch_send(r, b);
		return;
	}
	if (!b->queued) {
		b->queued = true;
		b->next = r->to_send;
		r->to_send = b;
		uv_prepare_start(&r->flush, on_flush);
	}
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
	while (r->laters) {
		uv_timer_stop(&r->laters->timer);
		later_fire(&r->laters->timer);
	}
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
	release_held(r, false);
	uv_close((uv_handle_t *)&r->reconnect, on_timer_closed);
	uv_close((uv_handle_t *)&r->watchdog, on_timer_closed);
	uv_close((uv_handle_t *)&r->flush, on_timer_closed);
}

/* ---------------------------------------------------------------- options */

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

/* "host:port" or "[v6]:port" into host (NUL-terminated) and port. Returns 0,
 * or -1 when s is neither or host does not fit. */
static int split_host_port(const char *s, char *host, size_t host_size, int *port)
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
		if (split_host_port(opt->sentinels[i], shost, sizeof shost, &sport) != 0) {
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
		if (!reply || !is_master(reply)) {
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
