/* redis_call: the commands on the loop's connection (redis.c): each
 * formatted in RESP and sent, its reply handed to its callback (a script
 * lost by Redis reloaded once), a call made while not ready failed from the
 * loop, and a durable call's reply held until the WAIT after it answers. */
#include "buf.h"
#include "log.h"
#include "redis.h"
#include "redis_int.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void redis_fail_laters(struct redis *r)
{
	while (r->laters) {
		uv_timer_stop(&r->laters->timer);
		later_fire(&r->laters->timer);
	}
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
void redis_release_held(struct redis *r, bool acked)
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
		redis_drop_connection(r, "WAIT failed", true);
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
		redis_set_state(r, R_UNACKED);
	} else if (acked && r->state == R_UNACKED) {
		r->warned_unacked = false;
		redis_log_ready(r);
		redis_set_state(r, R_READY);
	}
	redis_release_held(r, acked);
}

/* WAIT for the replicas: it covers every write sent before it. */
void redis_send_wait(struct redis *r)
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

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata);

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
		uv_prepare_start(&r->flush, redis_on_flush);
	}
}

void redis_send_eval(struct redis *r, struct call *c)
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
		redisAsyncCommandArgv(ac, redis_on_aux_reply, (void *)(uintptr_t)c->script, 3, argv,
		                      lens);
		r->pending++;
		redis_send_eval(r, c);
		return;
	}
	if (reply && reply->type == REDIS_REPLY_ERROR && r->n_sentinels &&
	    strncmp(reply->str, "READONLY", 8) == 0) {
		/* A master demoted under the connection: find the new one. */
		redis_drop_connection(r, "the server turned into a replica", true);
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
struct call *redis_eval_call(struct redis *r, size_t script, redis_reply_cb *cb, void *opaque,
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
	struct call *c = redis_eval_call(r, script, cb, opaque, nkeys, argc, total);
	/* Kept for a NOSCRIPT retry. */
	char *p = c->block;
	for (int i = 0; i < argc; i++) {
		size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
		memcpy(p, argv[i], len);
		c->argv[i] = p;
		c->argvlen[i] = len;
		p += len;
	}
	redis_send_eval(r, c);
}

void redis_on_flush(uv_prepare_t *h)
{
	struct redis *r = h->data;
	struct batch *b = r->to_send;
	r->to_send = NULL;
	while (b) {
		struct batch *next = b->next;
		b->queued = false;
		b->next = NULL;
		redis_batch_send(r, b);
		b = next;
	}
	/* Last: one WAIT covers every durable write of the turn. */
	if (r->unwaited > 0 && r->ac && !r->dropping)
		redis_send_wait(r);
	uv_prepare_stop(h);
}
