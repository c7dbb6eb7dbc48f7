/* engine_orphan: a submission left "submitting" (SPEC §14: a crash between a
 * provider accepting a batch and Redis recording it leaves at most one
 * orphan batch, which the worker finds and adopts or cancels).
 *
 * The provider's batches are listed, newest first, page by page, back to a
 * little before the submission was prepared, and matched by its token:
 * OpenAI keeps it in the batch's metadata, Gemini in its display name. An
 * Anthropic batch carries nothing of ours until its results exist (the
 * custom_ids "<token>-<n>"), so there the match is the batch created while
 * the submission could be submitted (prepare to its lease, with a minute of
 * clock skew either side) with as many requests, and no recorded submission
 * of ours: the nearest in time. It is adopted like any other, and the proof
 * comes when it ends: a result line whose custom_id does not carry the
 * token is not taken (engine_collect.c), so a wrong adoption costs time,
 * never a charge or a result. An Anthropic batch cannot be canceled on a
 * guess: we would cancel no batch we cannot tell is ours.
 *
 * Found: recorded (adopted), then polled and collected as any batch; its
 * answers settle the leases the reaper left alone. Not found: abandoned
 * (batch_abandon.lua: leases released at zero, jobs handed back: a Kafka
 * copy runs a job never committed, a collector's job goes back to the
 * submission it came from). The search is also what the submitting worker
 * runs itself when the step that creates the batch got no answer. */
#include "engine_int.h"

#include "buf.h"
#include "ledger.h"
#include "log.h"
#include "redis.h"
#include "timeutil.h"

#include <stdlib.h>
#include <string.h>

/* Pages of the provider's list read at most in one search. */
#define SEARCH_PAGES_MAX 20
/* Clock skew allowed between the provider's times and ours. */
#define SEARCH_SKEW_MS 60000

struct search {
	struct batch_sub *s;
	char *cursor;
	int pages;
	char **known; /* batch ids recorded in Redis (<base>batches) */
	size_t n_known;
	char *best; /* Anthropic: the nearest candidate so far */
	int64_t best_gap_ms;
};

static void search_page(struct search *se);

static void search_free(struct search *se)
{
	for (size_t i = 0; i < se->n_known; i++)
		free(se->known[i]);
	free(se->known);
	free(se->cursor);
	free(se->best);
	free(se);
}

static bool search_known(const struct search *se, const char *id)
{
	for (size_t i = 0; i < se->n_known; i++)
		if (strcmp(se->known[i], id) == 0)
			return true;
	return false;
}

/* The search is over: found is the batch id (taken) or NULL. */
static void search_end(struct search *se, char *found)
{
	struct batch_sub *s = se->s;
	search_free(se);
	if (found) {
		log_warn("orphan batch found: adopting it", "token", s->token, "batch", found,
		         NULL);
		free(s->batch_id);
		s->batch_id = found;
		batch_sub_record(s);
		return;
	}
	batch_sub_abandon(s);
}

static void on_search_retry(uv_timer_t *timer)
{
	struct batch_sub *s = timer->data;
	batch_orphan_search(s);
}

static void on_listed(void *opaque, const struct http_response *resp)
{
	struct search *se = opaque;
	struct batch_sub *s = se->s;
	struct engine *e = s->e;
	if (e->closing) {
		search_free(se);
		return;
	}
	const struct provider_conf *p = &e->cfg->providers[s->provider];
	struct provider_batch_list list = {0};
	enum response_class cls = RESPONSE_RETRYABLE;
	if (resp->error == HTTP_OK)
		cls = provider_batch_parse_list(p, resp->status, resp->body, resp->body_len, &list);
	if (cls != RESPONSE_OK) {
		/* Without the list nothing can be decided: try again later (the
		 * reaper leaves the leases alone meanwhile). */
		log_warn("orphan search: listing the provider's batches failed", "token", s->token,
		         "error", list.error_message ? list.error_message : "no answer", NULL);
		provider_batch_list_clear(&list);
		search_free(se);
		batch_sub_later(s, 5000, on_search_retry);
		return;
	}
	bool anthropic = strcmp(p->ops->type, "anthropic") == 0;
	int64_t lease = (int64_t)p->ops->batch->submit_steps * (p->timeout_ms + 15000);
	int64_t from = s->created_ms - SEARCH_SKEW_MS, to = s->created_ms + lease + SEARCH_SKEW_MS;
	bool older = false;
	for (size_t i = 0; i < list.n; i++) {
		struct provider_batch_status *it = &list.items[i];
		if (it->created_ms && it->created_ms < from)
			older = true;
		if (!it->id)
			continue;
		if (strcmp(it->token, s->token) == 0) {
			char *id = it->id;
			it->id = NULL;
			provider_batch_list_clear(&list);
			search_end(se, id);
			return;
		}
		if (anthropic && !it->token[0] && it->created_ms >= from && it->created_ms <= to &&
		    it->total == (int64_t)s->n && !search_known(se, it->id)) {
			int64_t gap = it->created_ms - s->created_ms;
			if (gap < 0)
				gap = -gap;
			if (!se->best || gap < se->best_gap_ms) {
				free(se->best);
				se->best = xstrdup(it->id);
				se->best_gap_ms = gap;
			}
		}
	}
	if (list.next && !older && ++se->pages < SEARCH_PAGES_MAX) {
		free(se->cursor);
		se->cursor = list.next;
		list.next = NULL;
		provider_batch_list_clear(&list);
		search_page(se);
		return;
	}
	provider_batch_list_clear(&list);
	char *best = se->best;
	se->best = NULL;
	search_end(se, best);
}

static void search_page(struct search *se)
{
	struct batch_sub *s = se->s;
	const struct provider_conf *p = &s->e->cfg->providers[s->provider];
	struct http_request req = {0};
	provider_batch_list_request(p, se->cursor, &req);
	http_pool_start(s->e->pools[s->provider], &req, p->timeout_ms, on_listed, se);
}

static void on_known(void *opaque, redisReply *reply)
{
	struct search *se = opaque;
	struct batch_sub *s = se->s;
	if (s->e->closing) {
		search_free(se);
		return;
	}
	if (!reply || reply->type != REDIS_REPLY_ARRAY) {
		search_free(se);
		batch_sub_later(s, 1000, on_search_retry);
		return;
	}
	se->known = xcalloc(reply->elements + 1, sizeof *se->known);
	for (size_t i = 0; i < reply->elements; i++)
		if (reply->element[i]->type == REDIS_REPLY_STRING)
			se->known[se->n_known++] =
			        xstrndup(reply->element[i]->str, reply->element[i]->len);
	for (struct batch_sub *o = s->e->batcher->subs; o; o = o->next) {
		if (o->batch_id && o != s) {
			se->known = xrealloc(se->known, (se->n_known + 1) * sizeof *se->known);
			se->known[se->n_known++] = xstrdup(o->batch_id);
		}
	}
	search_page(se);
}

void batch_orphan_search(struct batch_sub *s)
{
	struct engine *e = s->e;
	struct search *se = xcalloc(1, sizeof *se);
	se->s = s;
	s->phase = BSUB_SEARCHING;
	/* The batches our submissions recorded, which no orphan can be. */
	struct buf key = {0};
	ledger_key_base(&key, e->cfg);
	buf_puts(&key, "batches");
	const char *argv[] = {"ZRANGE", key.data, "0", "-1"};
	size_t lens[] = {6, key.len, 1, 2};
	redis_command(e->redis, on_known, se, 4, argv, lens);
	buf_free(&key);
}
