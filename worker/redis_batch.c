/* redis_batch: batch scripts (redis_add_batch_script): the calls of one
 * loop turn gathered and sent as one EVALSHA, each call's reply handed to
 * its own callback. */
#include "buf.h"
#include "log.h"
#include "redis.h"
#include "redis_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void redis_batch_send(struct redis *r, struct batch *b)
{
	if (b->n == 0)
		return;
	char count[24];
	size_t count_len = (size_t)snprintf(count, sizeof count, "%zu", b->n);
	struct batch_call *bc = xmalloc(sizeof *bc + b->n * sizeof bc->items[0]);
	bc->n = b->n;
	memcpy(bc->items, b->items, b->n * sizeof bc->items[0]);
	int argc = (int)(b->nk + 1 + b->na);
	struct call *c = redis_eval_call(r, b->script, on_batch_reply, bc, (int)b->nk, argc,
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
	redis_send_eval(r, c);
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
		redis_batch_send(r, b);
		return;
	}
	if (!b->queued) {
		b->queued = true;
		b->next = r->to_send;
		r->to_send = b;
		uv_prepare_start(&r->flush, redis_on_flush);
	}
}
