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
 * address at a time, trying every address in turn; logs keep the name. */
#include "redis.h"

#include "buf.h"
#include "log.h"
#include "timeutil.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum redis_state { R_DOWN, R_CONNECTING, R_LOADING, R_READY };

/* A Lua script and, once loaded, its SHA1. */
struct redis_script {
	const char *name;
	const char *source;
	char *owned; /* source, when it was made here (a batch form) */
	char sha[41];
	struct batch *batch; /* a batch script's calls of this loop turn */
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

struct redis {
	uv_loop_t *loop;
	struct redis_options opt;
	char *host;
	char *password;
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
	uv_prepare_t flush;   /* sends the batches before the loop waits */
	struct batch *to_send;
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

static void schedule_reconnect(struct redis *r)
{
	if (r->closing)
		return;
	if (r->backoff_ms < 50)
		r->backoff_ms = 50;
	uv_timer_start(&r->reconnect, on_reconnect_timer, (uint64_t)r->backoff_ms, 0);
	r->backoff_ms = r->backoff_ms * 2 > 2000 ? 2000 : r->backoff_ms * 2;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;
	(void)status;
	if (r->ac == ac)
		r->ac = NULL;
	r->pending = 0;
	if (r->state != R_DOWN && !r->closing)
		log_warn("redis connection lost", "host", r->host, NULL);
	set_state(r, R_DOWN);
	schedule_reconnect(r);
}

/* Gives up on the connection. From the watchdog (not inside a hiredis
 * callback) the context is freed at once: every pending callback gets NULL
 * now, even if the server hangs and would never answer a polite disconnect.
 * A context that never connected gets no disconnect callback from hiredis
 * 0.14, so the state is reset here. Inside a hiredis callback (a failed
 * handshake), the server is answering: a polite disconnect is enough. */
static void drop_connection(struct redis *r, const char *why, bool in_callback)
{
	if (!r->ac)
		return;
	log_warn("redis connection dropped", "reason", why, NULL);
	redisAsyncContext *ac = r->ac;
	if (in_callback) {
		redisAsyncDisconnect(ac);
		return;
	}
	bool connected = r->state != R_CONNECTING;
	r->ac = NULL;
	redisAsyncFree(ac); /* on_disconnect runs only if it had connected */
	if (!connected) {
		r->pending = 0;
		set_state(r, R_DOWN);
		schedule_reconnect(r);
	}
}

static void on_handshake_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct redis *r = ac->data;
	redisReply *reply = reply_;
	size_t script = (size_t)(uintptr_t)privdata;
	r->pending--;
	r->last_progress_ms = time_mono_ms();
	r->suspect = false;
	if (!reply)
		return; /* connection lost: on_disconnect handles it */
	if (reply->type == REDIS_REPLY_ERROR) {
		char msg[256];
		snprintf(msg, sizeof msg, "%.*s", (int)reply->len, reply->str);
		log_error("redis handshake failed", "error", msg, NULL);
		drop_connection(r, "handshake failed", true);
		return;
	}
	if (script != SIZE_MAX && reply->type == REDIS_REPLY_STRING && reply->len == 40) {
		memcpy(r->scripts[script].sha, reply->str, 40);
		r->scripts[script].sha[40] = '\0';
	}
	if (--r->loading == 0) {
		r->backoff_ms = 0;
		log_info("redis ready", "host", r->host, NULL);
		set_state(r, R_READY);
	}
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

static void handshake(struct redis *r)
{
	redisAsyncContext *ac = r->ac;
	set_state(r, R_LOADING);
	r->loading = 0;
	if (r->password) {
		const char *argv[] = {"AUTH", r->password};
		size_t lens[] = {4, strlen(r->password)};
		redisAsyncCommandArgv(ac, on_handshake_reply, (void *)(uintptr_t)SIZE_MAX, 2, argv,
		                      lens);
		r->pending++;
		r->loading++;
	}
	if (r->opt.db) {
		redisAsyncCommand(ac, on_handshake_reply, (void *)(uintptr_t)SIZE_MAX, "SELECT %d",
		                  r->opt.db);
		r->pending++;
		r->loading++;
	}
	for (size_t i = 0; i < r->n_scripts; i++) {
		const char *argv[] = {"SCRIPT", "LOAD", r->scripts[i].source};
		size_t lens[] = {6, 4, strlen(r->scripts[i].source)};
		redisAsyncCommandArgv(ac, on_handshake_reply, (void *)(uintptr_t)i, 3, argv, lens);
		r->pending++;
		r->loading++;
	}
	redisAsyncCommand(ac, on_handshake_reply, (void *)(uintptr_t)SIZE_MAX, "PING");
	r->pending++;
	r->loading++;
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

/* Connects to the next address of the last lookup, or looks the name up. */
static void connect_now(struct redis *r)
{
	if (r->closing || r->ac || r->resolving)
		return;
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
	if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
		redisAsyncFree(ac);
		connect_next(r);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->ac = ac;
	r->pending = 0;
	r->last_progress_ms = time_mono_ms();
	log_debug("redis connecting", "host", r->host, "address", addr, NULL);
	set_state(r, R_CONNECTING);
}

static void on_watchdog(uv_timer_t *t)
{
	struct redis *r = t->data;
	if (!r->ac)
		return;
	int64_t idle = time_mono_ms() - r->last_progress_ms;
	bool stalled = (r->state == R_CONNECTING || r->pending > 0) && idle > r->opt.timeout_ms;
	if (stalled && !r->suspect) {
		/* Timers run before the loop reads its sockets: after a long turn the
		 * replies may be waiting unread. Judge again at the next tick. */
		r->suspect = true;
	} else if (stalled) {
		r->suspect = false;
		drop_connection(r, "no reply within redis.timeout_ms", false);
	} else if (r->state == R_READY && r->pending == 0 && idle > 1000) {
		/* Idle: a PING keeps the liveness view fresh for /readyz. */
		redisAsyncCommand(r->ac, on_aux_reply, (void *)(uintptr_t)SIZE_MAX, "PING");
		r->pending++;
	}
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
		if (r->password) {
			explicit_bzero(r->password, strlen(r->password));
			free(r->password);
		}
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

struct redis *redis_new(uv_loop_t *loop, const struct redis_options *opt, redis_state_cb *state_cb,
                        void *opaque)
{
	struct redis *r = xcalloc(1, sizeof *r);
	r->loop = loop;
	r->opt = *opt;
	r->host = xstrdup(opt->host);
	r->password = opt->password ? xstrdup(opt->password) : NULL;
	r->opt.host = r->host;
	r->opt.password = r->password;
	if (r->opt.timeout_ms <= 0)
		r->opt.timeout_ms = 1000;
	r->state_cb = state_cb;
	r->opaque = opaque;
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
	uint64_t period = (uint64_t)(r->opt.timeout_ms / 4 > 10 ? r->opt.timeout_ms / 4 : 10);
	uv_timer_start(&r->watchdog, on_watchdog, period, period);
	connect_now(r);
}

bool redis_ready(const struct redis *r)
{
	return r->state == R_READY;
}

int redis_pending(const struct redis *r)
{
	return r->pending;
}

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata);

static void send_call(struct redis *r, struct call *c, int argc, const char **argv,
                      const size_t *argvlen)
{
	if (r->state != R_READY || !r->ac ||
	    redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, argvlen) != REDIS_OK) {
		fail_later(r, c);
		return;
	}
	r->pending++;
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
	uv_prepare_stop(h);
	struct batch *b = r->to_send;
	r->to_send = NULL;
	while (b) {
		struct batch *next = b->next;
		b->queued = false;
		b->next = NULL;
		batch_send(r, b);
		b = next;
	}
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
	char tmp[24], *p = tmp + sizeof tmp;
	do {
		*--p = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	size_t len = (size_t)(tmp + sizeof tmp - p);
	buf_append(&b->args, p, len);
	b->alens[b->na++] = len;
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
	uv_close((uv_handle_t *)&r->reconnect, on_timer_closed);
	uv_close((uv_handle_t *)&r->watchdog, on_timer_closed);
	uv_close((uv_handle_t *)&r->flush, on_timer_closed);
}

int redis_probe(const struct redis_options *opt, char *errstr, size_t errstr_size)
{
	int rc = -1;
	struct timeval tv = {.tv_sec = opt->timeout_ms / 1000,
	                     .tv_usec = (opt->timeout_ms % 1000) * 1000};
	redisReply *reply = NULL;
	redisContext *c = redisConnectWithTimeout(opt->host, opt->port, tv);
	if (!c || c->err) {
		snprintf(errstr, errstr_size, "redis %s:%d: %s", opt->host, opt->port,
		         c ? c->errstr : "out of memory");
		goto out;
	}
	redisSetTimeout(c, tv);
	if (opt->password) {
		reply = redisCommand(c, "AUTH %s", opt->password);
		if (!reply || reply->type == REDIS_REPLY_ERROR) {
			snprintf(errstr, errstr_size, "redis %s:%d: authentication failed",
			         opt->host, opt->port);
			goto out;
		}
		freeReplyObject(reply);
	}
	reply = redisCommand(c, "PING");
	if (!reply || reply->type == REDIS_REPLY_ERROR) {
		snprintf(errstr, errstr_size, "redis %s:%d: %s", opt->host, opt->port,
		         reply ? reply->str : c->errstr);
		goto out;
	}
	rc = 0;
out:
	if (reply)
		freeReplyObject(reply);
	if (c)
		redisFree(c);
	return rc;
}
