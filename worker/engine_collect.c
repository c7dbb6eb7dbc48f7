/* engine_collect: a recorded batch, from its polls to its last job (SPEC §14).
 *
 * The holder of a submission polls it every batch.poll_interval_s, renewing
 * its claim each time (batch_touch.lua, which also keeps the dashboard's
 * hash), and cancels it when it has not ended batch.fallback_lead_s before
 * the earliest complete_by of its jobs. Once it ends, its results are
 * streamed, line by line as they arrive (Gemini's answers come in the
 * status body), and the jobs of the requests answered are read a page at a
 * time (batch_jobs.lua), then those of the requests without a result; the
 * download pauses (HTTP_CHUNK_PAUSE) while a page waits or too many tasks
 * are open, so the collector's memory does not grow with the batch. Each
 * request's job becomes a task with no Kafka source, run on from Redis:
 *   - answered: settled at the batch price once per (job, attempt), its
 *     outputs kept for a re-send, produced, marked done on acknowledgement;
 *   - errored, expired, canceled or without a result: released at zero (a
 *     settle of 0) and decided (task_batch_decide): the model's next batch
 *     while the deadline allows, else sync;
 *   - a job done elsewhere is charged for what the provider billed (its cost
 *     record produced) but gets no second result; a job finished and not
 *     acknowledged is re-sent; a job another submission holds now is left to
 *     it (one being submitted is looked at again later).
 * The submission is finished when every request's task is over. */
#include "engine_int.h"

#include "buf.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A status body (Gemini's answers inline) is held up to this size. */
#define STATUS_MAX_BYTES ((size_t)256 << 20)
/* A results file's download may run this long before it is tried again. */
#define RESULTS_TIMEOUT_MS 600000

static void sub_poll(struct batch_sub *s);
static void sub_cancel(struct batch_sub *s, const char *why);
static void sub_collect(struct batch_sub *s);
static void results_next(struct batch_sub *s);
static void on_jobs(void *opaque, redisReply *reply);
static enum outcome missing_outcome(const struct batch_sub *s);

/* ---------------------------------------------------------------- polls */

static void on_touched(void *opaque, redisReply *reply)
{
	struct batch_sub *s = opaque;
	if (s->e->closing)
		return;
	s->touches--;
	if (s->free_pending) {
		/* Finished (or let go) while this touch was on its way. */
		if (!s->touches)
			batch_sub_free(s);
		return;
	}
	if (!reply)
		return;
	if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0 && !s->lost) {
		/* Our claim passed and another worker holds it now. */
		log_warn("batch claim lost to another worker", "token", s->token, NULL);
		s->lost = true;
	}
	if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 2 && !s->cancel_asked) {
		/* `promptyard batches cancel`: canceled now if it still runs (its
		 * next poll sees the provider's answer), as for a deadline. */
		s->cancel_asked = true;
		if (s->phase == BSUB_POLLING && !provider_batch_state_final(s->pstate))
			sub_cancel(s, "an operator asked");
	}
}

static void sub_touch(struct batch_sub *s, bool with_state)
{
	s->touches++;
	ledger_batch_touch(s->e->ledger, s->token, s->batch_id, batch_claim_lease_ms(s->e),
	                   with_state ? provider_batch_state_name(s->pstate) : NULL, s->done,
	                   s->failed, s->phase == BSUB_COLLECTING ? s->spent_nusd : -1, on_touched,
	                   s);
}

static void on_poll_timer(uv_timer_t *timer)
{
	struct batch_sub *s = timer->data;
	if (!s->e->closing)
		sub_poll(s);
}

/* Collecting: the claim is kept while the results are read and the jobs run. */
static void on_renew_timer(uv_timer_t *timer)
{
	struct batch_sub *s = timer->data;
	if (!s->e->closing && !s->lost)
		sub_touch(s, false);
}

void batch_collect_start(struct batch_sub *s)
{
	s->phase = BSUB_POLLING;
	sub_poll(s);
}

static int on_status_chunk(void *opaque, const char *data, size_t len)
{
	struct batch_sub *s = opaque;
	if (s->status.len + len > STATUS_MAX_BYTES) {
		s->status_too_large = true;
		return -1;
	}
	buf_append(&s->status, data, len);
	return 0;
}

static void on_cancel_answer(void *opaque, const struct http_response *resp)
{
	struct batch_sub *s = opaque;
	if (s->e->closing)
		return;
	char status[16];
	snprintf(status, sizeof status, "%ld", resp->status);
	log_info("batch cancel sent", "token", s->token, "batch", s->batch_id, "status", status,
	         NULL);
}

/* Cancels s at its provider (once): what it answered is used, its other
 * requests come back canceled and their jobs run sync (task_batch_decide).
 * Its polls go on, a second apart, until it ends. */
static void sub_cancel(struct batch_sub *s, const char *why)
{
	struct engine *e = s->e;
	const struct provider_conf *p = &e->cfg->providers[s->provider];
	if (s->cancel_sent)
		return;
	s->cancel_sent = true;
	log_info("batch canceling", "token", s->token, "batch", s->batch_id, "why", why, NULL);
	metrics_add(e->metrics, METRIC_BATCHES_TOTAL,
	            (const char *[]){p->name, e->cfg->models[s->model].name, "canceled"}, 1);
	struct http_request req = {0};
	provider_batch_cancel_request(p, s->batch_id, &req);
	http_pool_start(e->pools[s->provider], &req, p->timeout_ms, on_cancel_answer, s);
	if (!s->polling)
		batch_sub_later(s, 1000, on_poll_timer);
}

static void on_polled(void *opaque, const struct http_response *resp)
{
	struct batch_sub *s = opaque;
	struct engine *e = s->e;
	if (e->closing)
		return;
	const struct provider_conf *p = &e->cfg->providers[s->provider];
	const struct config *cfg = e->cfg;
	s->polling = false;
	int64_t next_ms = cfg->batch.poll_interval_s * 1000;
	struct provider_batch_status st = {0};
	enum response_class cls = RESPONSE_RETRYABLE;
	if (resp->error == HTTP_OK) {
		const char *body =
		        resp->status >= 200 && resp->status < 300 ? s->status.data : resp->body;
		size_t len =
		        resp->status >= 200 && resp->status < 300 ? s->status.len : resp->body_len;
		cls = provider_batch_parse_status(p, resp->status, body ? body : "", len, &st);
	}
	if (cls != RESPONSE_OK) {
		log_warn("batch poll failed", "token", s->token, "batch", s->batch_id, "error",
		         st.error_message ? st.error_message : "no answer", NULL);
		provider_batch_status_clear(&st);
		if (!s->lost)
			sub_touch(s, false);
		batch_sub_later(s, next_ms, on_poll_timer);
		return;
	}
	s->pstate = st.state;
	s->done = st.done;
	s->failed = st.failed;
	if (provider_batch_state_final(st.state) && s->lost) {
		provider_batch_status_clear(&st);
		batch_sub_free(s); /* its holder collects it */
		return;
	}
	if (provider_batch_state_final(st.state)) {
		for (size_t i = 0; i < st.n_results && i < 2; i++) {
			s->results[i] = st.results[i];
			st.results[i] = NULL;
		}
		s->n_results = st.n_results < 2 ? st.n_results : 2;
		s->inline_results = st.inline_results;
		provider_batch_status_clear(&st);
		if (!s->lost)
			sub_touch(s, true);
		log_info("batch ended", "token", s->token, "batch", s->batch_id, "state",
		         provider_batch_state_name(s->pstate), NULL);
		sub_collect(s);
		return;
	}
	provider_batch_status_clear(&st);
	if (s->lost) {
		batch_sub_free(s); /* its holder polls it now */
		return;
	}
	sub_touch(s, true);
	if (s->cancel_sent) {
		next_ms = 1000;
	} else if (s->cancel_asked) {
		sub_cancel(s, "an operator asked");
		next_ms = 1000;
	} else if (time_now_ms() >= s->complete_by_ms - cfg->batch.fallback_lead_s * 1000) {
		/* SPEC §14: not ended fallback_lead_s before the earliest
		 * complete_by: canceled; what it answered is used, the rest runs
		 * sync. */
		sub_cancel(s, "its deadline");
		next_ms = 1000;
	}
	batch_sub_later(s, next_ms, on_poll_timer);
}

static void sub_poll(struct batch_sub *s)
{
	struct engine *e = s->e;
	const struct provider_conf *p = &e->cfg->providers[s->provider];
	if (s->polling)
		return;
	s->polling = true;
	buf_free(&s->status);
	s->status_too_large = false;
	struct http_request req = {0};
	provider_batch_poll_request(p, s->batch_id, &req);
	http_pool_stream(e->pools[s->provider], &req, p->timeout_ms, on_status_chunk, on_polled, s);
}

/* ---------------------------------------------------------------- the requests */

/* Requests whose jobs one batch_jobs.lua call reads. */
#define COLLECT_PAGE 100
/* The collector's tasks open (settling, producing, waiting for their
 * acknowledgement) above which the download pauses and no page is read. */
#define COLLECT_OPEN_MAX 256

static void collect_pump(struct batch_sub *s);
static void request_handle(struct batch_sub *s, size_t i, struct breq *r,
                           struct provider_batch_result *res, enum outcome missing);

static char *reply_str(const redisReply *r, size_t i, size_t *len)
{
	const redisReply *e = r->element[i];
	if (len)
		*len = e->type == REDIS_REPLY_STRING ? e->len : 0;
	return e->type == REDIS_REPLY_STRING ? xstrndup(e->str, e->len) : xstrdup("");
}

static int64_t reply_i64(const redisReply *r, size_t i)
{
	char *v = reply_str(r, i, NULL);
	int64_t n = atoll(v);
	free(v);
	return n;
}

/* A request's entry of batch_jobs.lua (an array of 14). */
static void breq_read(const redisReply *e, struct breq *r)
{
	r->attempt = (int)reply_i64(e, 0);
	r->job_id = reply_str(e, 1, NULL);
	r->state = reply_str(e, 2, NULL);
	r->sub = reply_str(e, 3, NULL);
	r->outputs = reply_str(e, 4, &r->outputs_len);
	r->value = reply_str(e, 5, &r->value_len);
	r->key = reply_str(e, 6, &r->key_len);
	r->headers = reply_str(e, 7, NULL);
	r->topic = reply_str(e, 8, NULL);
	r->partition = (int32_t)reply_i64(e, 9);
	r->offset = reply_i64(e, 10);
	r->complete_by_ms = reply_i64(e, 11);
	r->next_sub = reply_str(e, 12, NULL);
	r->history = reply_str(e, 13, NULL);
}

static void breq_clear(struct breq *r)
{
	free(r->job_id);
	free(r->state);
	free(r->sub);
	free(r->next_sub);
	free(r->outputs);
	free(r->value);
	free(r->key);
	free(r->headers);
	free(r->topic);
	free(r->history);
	*r = (struct breq){0};
}

void batch_waits_clear(struct bwait *w, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (w[k].has_res)
			provider_batch_result_clear(&w[k].res);
}

/* Request i waits for its page, with its result (taken) or none. */
static void wait_push(struct batch_sub *s, size_t i, struct provider_batch_result *res)
{
	if (s->wait_head + s->n_wait == s->cap_wait && s->wait_head) {
		memmove(s->wait, s->wait + s->wait_head, s->n_wait * sizeof *s->wait);
		s->wait_head = 0;
	}
	if (s->n_wait == s->cap_wait) {
		s->cap_wait = s->cap_wait ? 2 * s->cap_wait : COLLECT_PAGE;
		s->wait = xrealloc(s->wait, s->cap_wait * sizeof *s->wait);
	}
	struct bwait *w = &s->wait[s->wait_head + s->n_wait++];
	*w = (struct bwait){.i = i, .has_res = res != NULL};
	if (res) {
		w->res = *res;
		*res = (struct provider_batch_result){0};
	}
	s->req_flags[i] |= BREQ_SEEN;
}

static void jobs_ask(struct batch_sub *s)
{
	size_t idx[COLLECT_PAGE];
	for (size_t k = 0; k < s->n_asked; k++)
		idx[k] = s->asked[k].i;
	s->asking = true;
	ledger_batch_jobs(s->e->ledger, s->token, idx, s->n_asked, on_jobs, s);
}

/* The next page of the waiting requests: their jobs read. */
static void page_ask(struct batch_sub *s)
{
	size_t k = s->n_wait < COLLECT_PAGE ? s->n_wait : COLLECT_PAGE;
	if (!s->asked)
		s->asked = xcalloc(COLLECT_PAGE, sizeof *s->asked);
	memcpy(s->asked, s->wait + s->wait_head, k * sizeof *s->wait);
	s->n_wait -= k;
	s->wait_head = s->n_wait ? s->wait_head + k : 0;
	s->n_asked = k;
	jobs_ask(s);
}

static void on_jobs_retry(uv_timer_t *timer)
{
	jobs_ask(timer->data);
}

static void on_jobs(void *opaque, redisReply *reply)
{
	struct batch_sub *s = opaque;
	if (s->e->closing)
		return;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != s->n_asked) {
		/* Asked again: nothing of the page was taken. */
		if (!s->jobs_timer) {
			s->jobs_timer = xcalloc(1, sizeof *s->jobs_timer);
			uv_timer_init(s->e->loop, s->jobs_timer);
			s->jobs_timer->data = s;
		}
		uv_timer_start(s->jobs_timer, on_jobs_retry, 1000, 0);
		return;
	}
	/* s->asking stays set while the page is handled: a task that ends
	 * meanwhile does not start the next page. */
	for (size_t k = 0; k < s->n_asked; k++) {
		struct bwait *w = &s->asked[k];
		const redisReply *e = reply->element[k];
		struct breq r = {0};
		if (e->type == REDIS_REPLY_ARRAY && e->elements >= 14) {
			breq_read(e, &r);
			request_handle(s, w->i, &r, w->has_res ? &w->res : NULL,
			               w->has_res ? OUTCOME_BATCH_ERRORED : missing_outcome(s));
			breq_clear(&r);
		}
		if (w->has_res)
			provider_batch_result_clear(&w->res);
		w->has_res = false;
	}
	s->n_asked = 0;
	s->asking = false;
	collect_pump(s);
}

/* Pauses the download while too much waits or runs. */
static bool collect_full(const struct batch_sub *s)
{
	return s->n_wait >= COLLECT_PAGE || s->open_tasks >= COLLECT_OPEN_MAX;
}

/* The requests without a result join the waiting ones, a page at most. */
static void sweep_fill(struct batch_sub *s)
{
	while (s->n_wait < COLLECT_PAGE && s->sweep_i < s->n) {
		size_t i = s->sweep_i++;
		if (!(s->req_flags[i] & BREQ_SEEN))
			wait_push(s, i, NULL);
	}
}

/* The collection's next step, whenever something changed: a page asked
 * (when full, or when no more results come), the download resumed, the
 * next results file, the requests without a result, the end. */
static void collect_pump(struct batch_sub *s)
{
	if (s->asking || s->e->closing || s->phase != BSUB_COLLECTING)
		return;
	if (s->sweeping)
		sweep_fill(s);
	bool ending = !s->streaming || s->file_over;
	if (s->n_wait && s->open_tasks < COLLECT_OPEN_MAX &&
	    (s->n_wait >= COLLECT_PAGE || ending)) {
		page_ask(s);
		return;
	}
	if (s->streaming && !s->file_over) {
		if (s->paused && !collect_full(s)) {
			s->paused = false;
			http_pool_resume(s->e->pools[s->provider], s);
		}
		return;
	}
	if (s->n_wait)
		return; /* a task's end asks the page */
	if (s->streaming) {
		s->streaming = s->file_over = false;
		s->results_i++;
		results_next(s);
	} else if (s->sweeping) {
		s->sweeping = false;
		s->lines_done = true;
		batch_collect_check(s);
	}
}

static void sub_collect(struct batch_sub *s)
{
	s->phase = BSUB_COLLECTING;
	if (!s->renew) {
		uint64_t every = (uint64_t)s->e->cfg->batch.poll_interval_s * 1000;
		s->renew = xcalloc(1, sizeof *s->renew);
		uv_timer_init(s->e->loop, s->renew);
		s->renew->data = s;
		uv_timer_start(s->renew, on_renew_timer, every, every);
	}
	if (!s->req_flags)
		s->req_flags = xcalloc(s->n ? s->n : 1, 1);
	results_next(s);
}

/* The deferred requests are looked at again, as requests without a result
 * (their jobs are in another submission now, or back to be decided). */
static void on_deferred_timer(uv_timer_t *timer)
{
	struct batch_sub *s = timer->data;
	for (size_t i = 0; i < s->n; i++)
		if (s->req_flags[i] & BREQ_DEFERRED)
			s->req_flags[i] = 0;
	s->deferred = 0;
	s->lines_done = false;
	s->sweeping = true;
	s->sweep_i = 0;
	collect_pump(s);
}

void batch_collect_check(struct batch_sub *s)
{
	if (!s->lines_done || s->open_tasks || s->phase != BSUB_COLLECTING)
		return;
	if (s->deferred) {
		batch_sub_later(s, 2000, on_deferred_timer);
		return;
	}
	if (s->lost) {
		batch_sub_free(s);
		return;
	}
	log_info("batch collected", "token", s->token, "batch", s->batch_id, NULL);
	batch_sub_finish(s, "collected");
}

/* ---------------------------------------------------------------- a request's task */

static void headers_decode(const char *text, rd_kafka_headers_t **out)
{
	*out = NULL;
	for (const char *p = text; p && *p;) {
		const char *tab = strchr(p, '\t'), *nl = strchr(p, '\n');
		if (!tab || !nl || tab > nl)
			break;
		size_t hex = (size_t)(nl - tab - 1) / 2;
		unsigned char *v = xmalloc(hex + 1);
		for (size_t k = 0; k < hex; k++) {
			unsigned int byte = 0;
			sscanf(tab + 1 + 2 * k, "%2x", &byte);
			v[k] = (unsigned char)byte;
		}
		if (!*out)
			*out = rd_kafka_headers_new(4);
		rd_kafka_header_add(*out, p, (ssize_t)(tab - p), v, (ssize_t)hex);
		free(v);
		p = nl + 1;
	}
}

/* A task for request r: its job decoded from Redis, routed, with the batch
 * attempt as its last. NULL when the job cannot be read back (logged; the
 * request counts as dealt with). */
static struct task *request_task(struct batch_sub *s, const struct breq *r)
{
	struct engine *e = s->e;
	char err[512];
	struct task *t = xcalloc(1, sizeof *t);
	t->e = e;
	t->serial = ++e->serial;
	t->pending_model = -1;
	t->admitted_model = -1;
	t->started_mono_ms = time_mono_ms();
	t->partition = r->partition;
	t->offset = r->offset;
	t->src_topic = xstrdup(r->topic);
	t->id = xstrdup(r->job_id);
	if (r->key_len) {
		t->key = xstrndup(r->key, r->key_len);
		t->key_len = r->key_len;
	}
	headers_decode(r->headers, &t->headers);
	task_link(t);
	t->looked_up = true;
	t->bsub = s;
	s->open_tasks++;
	if (job_decode(e->cfg, r->value, r->value_len, &t->job, err, sizeof err) != 0) {
		log_error("a batched job cannot be read back", "id", t->id, "error", err, NULL);
		ledger_release(e->ledger, t->id, r->attempt, NULL, NULL);
		task_free(t);
		return NULL;
	}
	if (r->complete_by_ms)
		t->job.complete_by_ms = r->complete_by_ms;
	t->batch_mode = engine_batch_mode(e, &t->job);
	task_route(t);
	t->tried = xcalloc(e->cfg->n_models, sizeof *t->tried);
	for (size_t k = 0; k < t->route.n_chain; k++)
		if (t->route.chain[k] == s->model)
			t->chain_pos = k;
	batch_history_decode(t, r->history);
	struct attempt_rec *a = task_attempt_new(t);
	if (!a) {
		ledger_release(e->ledger, t->id, r->attempt, NULL, NULL);
		task_fail(t, ERR_PROVIDERS_FAILED, "too many attempts");
		return NULL;
	}
	a->number = r->attempt;
	a->model = s->model;
	a->batch = true;
	a->batch_id = s->batch_id ? xstrdup(s->batch_id) : NULL;
	t->n_calls++;
	t->call_estimate_nusd = t->route.entries[s->model].estimate_nusd;
	return t;
}

/* Produces what t holds (maybe nothing) and lets it end. */
static void task_produce_or_end(struct task *t)
{
	t->replayed = true;
	task_produce(t);
}

static void on_prior_settled(void *opaque, redisReply *reply);

/* Settles the last attempt of t, a job finished before. */
static void prior_settle(struct task *t)
{
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	ledger_settle_budget(t->e->ledger, t->job.budget_name, t->id, a->number, a->cost_nusd, NULL,
	                     NULL, on_prior_settled, t);
}

static void on_prior_settle_retry(uv_timer_t *timer)
{
	prior_settle(timer->data);
}

/* The settle of an attempt of a job finished before: its cost record goes
 * out when charged now, with the job's kept outputs when it has any. Retried
 * while Redis cannot answer; a refusal that stays (SETTLE_REFUSALS_MAX)
 * leaves the lease to the reaper, which charges its estimate. */
static void on_prior_settled(void *opaque, redisReply *reply)
{
	struct task *t = opaque;
	struct engine *e = t->e;
	if (e->closing)
		return;
	struct ledger_settlement st;
	char err[256];
	int rc = ledger_settle_result(reply, &st, err, sizeof err);
	if (rc != LEDGER_OK) {
		if (rc == LEDGER_UNREACHABLE || ledger_error_transient(err) ||
		    t->settle_tries < SETTLE_REFUSALS_MAX) {
			if (t->settle_tries++ % 50 == 0)
				log_warn("settle of a batch answer pending", "id", t->id, "error",
				         rc == LEDGER_UNREACHABLE ? "redis unreachable" : err,
				         NULL);
			task_later(t, t->settle_tries < 10 ? 100 : 500, on_prior_settle_retry);
			return;
		}
		log_error(
		        "the ledger refused to settle a batch answer: its lease will be reaped at "
		        "the estimate",
		        "id", t->id, "error", err, NULL);
		st = (struct ledger_settlement){0};
	}
	const char *outputs = t->batch_outputs;
	size_t outputs_len = t->batch_outputs_len;
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	size_t lines = 1;
	for (size_t k = 0; k < outputs_len; k++)
		lines += outputs[k] == '\n';
	t->outs = xcalloc(lines + 1, sizeof *t->outs);
	if (st.now && a->billed && st.how == LEDGER_CHARGED_ACTUAL) {
		struct buf b = {0};
		output_cost(&b, e->cfg, t->id, a, t->job.budget_name, false, time_now_ms());
		task_add_out(t, e->cfg->kafka.costs_topic, &b, false);
	}
	const char *p = outputs, *end = outputs + outputs_len;
	while (outputs_len && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct buf b = {0};
		buf_append(&b, p, n);
		bool first = p == outputs;
		task_add_out(t, first ? e->cfg->kafka.results_topic : e->cfg->kafka.costs_topic, &b,
		             first);
		p += n + 1;
	}
	if (outputs_len)
		e->jobs_resent++;
	task_produce_or_end(t);
}

/* The cost of an answer at the batch price (or its estimate, when its
 * usage could not be: SPEC §13). */
static void task_bill(struct task *t, struct attempt_rec *a)
{
	struct engine *e = t->e;
	const struct model_conf *m = &e->cfg->models[a->model];
	if (!t->completion.has_usage)
		return;
	a->billed = true;
	a->usage = t->completion.usage;
	a->cost_nusd =
	        a->estimated ? t->call_estimate_nusd : money_cost_nusd(&m->batch_price, &a->usage);
	t->cost_nusd += a->cost_nusd;
	if (t->bsub)
		t->bsub->spent_nusd += a->cost_nusd;
	const char *provider = e->cfg->providers[m->provider].name;
	const char *labels[] = {t->job.budget_name, provider, m->name};
	metrics_add(e->metrics, METRIC_SPEND_USD_TOTAL, labels, a->cost_nusd);
	metrics_add(e->metrics, METRIC_BATCH_SPEND_USD_TOTAL, labels, a->cost_nusd);
	metrics_add(e->metrics, METRIC_COST_RECORDS_TOTAL, (const char *[]){"false"}, 1);
}

/* Request i's outcome (r: its job, as read; res: its result line, or NULL
 * for none) becomes its job's next step. */
static void request_handle(struct batch_sub *s, size_t i, struct breq *r,
                           struct provider_batch_result *res, enum outcome missing)
{
	struct engine *e = s->e;
	if (strcmp(r->state, "submitting") == 0 && strcmp(r->sub, s->token) == 0 &&
	    strcmp(r->next_sub, s->token) != 0) {
		/* Its job is being submitted again, by a worker that died or is
		 * slow: look again once that submission is recorded or abandoned. */
		s->req_flags[i] |= BREQ_DEFERRED;
		s->deferred++;
		return;
	}
	bool finished = strcmp(r->state, "done") == 0 || strcmp(r->state, "pending") == 0;
	bool mine = strcmp(r->state, "batched") == 0 && strcmp(r->sub, s->token) == 0;
	if (!finished && !mine)
		return; /* another submission holds it now, or it is gone */
	struct task *t = request_task(s, r);
	if (!t)
		return;
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	const struct model_conf *m = &e->cfg->models[a->model];
	completion_clear(&t->completion);
	t->cls = RESPONSE_RETRYABLE;
	a->outcome = missing;
	if (res && res->outcome == BATCH_LINE_ANSWERED) {
		t->completion = res->c;
		memset(&res->c, 0, sizeof res->c);
		t->cls = res->cls;
		if (t->cls == RESPONSE_OK) {
			a->outcome = OUTCOME_OK;
			a->http_status = 200;
		} else {
			/* Answered with an error (OpenAI's failed requests come as
			 * lines with their status): a failed request. */
			a->outcome = OUTCOME_BATCH_ERRORED;
		}
	} else if (res) {
		t->cls = res->cls;
		a->outcome = res->outcome == BATCH_LINE_EXPIRED    ? OUTCOME_BATCH_EXPIRED
		             : res->outcome == BATCH_LINE_CANCELED ? OUTCOME_BATCH_CANCELED
		                                                   : OUTCOME_BATCH_ERRORED;
	}
	if (a->outcome == OUTCOME_OK || t->completion.has_usage) {
		task_judge_usage(t, a, m, t->route.entries[a->model].est_input,
		                 t->route.entries[a->model].output_tokens);
		if (a->outcome == OUTCOME_OK)
			task_judge_output(t, a);
	}
	task_bill(t, a);
	char outcome[32];
	output_outcome(outcome, sizeof outcome, a);
	metrics_add(e->metrics, METRIC_ATTEMPTS_TOTAL,
	            (const char *[]){e->cfg->providers[m->provider].name, m->name, outcome}, 1);
	if (finished) {
		/* Done elsewhere: charged for what was billed, no second result;
		 * finished and not acknowledged: its outputs re-sent. */
		t->batch_outputs = r->outputs; /* for on_prior_settled */
		t->batch_outputs_len = r->outputs_len;
		r->outputs = NULL;
		r->outputs_len = 0;
		prior_settle(t);
		return;
	}
	if (a->outcome == OUTCOME_OK)
		task_build_outputs(t);
	task_settle(t);
}

static enum outcome missing_outcome(const struct batch_sub *s)
{
	switch (s->pstate) {
	case BATCH_CANCELED:
	case BATCH_CANCELING: return OUTCOME_BATCH_CANCELED;
	case BATCH_EXPIRED: return OUTCOME_BATCH_EXPIRED;
	default: return OUTCOME_BATCH_ERRORED;
	}
}

/* One result (a line of a file, or an inline answer): its request waits
 * for its job's page. */
static void result_take(struct batch_sub *s, struct provider_batch_result *res)
{
	char token[PROVIDER_BATCH_TOKEN_LEN + 1], id[PROVIDER_BATCH_CUSTOM_ID_MAX + 1];
	size_t n;
	if (res->outcome == BATCH_LINE_BLANK)
		return;
	if (res->outcome == BATCH_LINE_INVALID) {
		log_warn("batch result line unreadable", "token", s->token, "error",
		         res->c.error_message ? res->c.error_message : "", NULL);
		return;
	}
	if (!res->custom_id && res->position >= 0) {
		provider_batch_custom_id(s->token, (size_t)res->position, id);
		res->custom_id = xstrdup(id);
	}
	if (!res->custom_id || provider_batch_custom_id_parse(res->custom_id, token, &n) != 0 ||
	    strcmp(token, s->token) != 0 || n >= s->n || (s->req_flags[n] & BREQ_SEEN))
		return; /* not one of ours (an adopted Anthropic batch proves it here) */
	wait_push(s, n, res);
}

static void line_take(struct batch_sub *s, const char *line, size_t len)
{
	struct provider_batch_result res = {0};
	const struct provider_conf *p = &s->e->cfg->providers[s->provider];
	provider_batch_parse_result(p, &s->e->cfg->models[s->model], line, len, &res);
	result_take(s, &res);
	provider_batch_result_clear(&res);
}

static int on_results_chunk(void *opaque, const char *data, size_t len)
{
	struct batch_sub *s = opaque;
	if (s->e->closing)
		return -1;
	buf_append(&s->line, data, len);
	size_t start = 0;
	for (;;) {
		const char *nl = memchr(s->line.data + start, '\n', s->line.len - start);
		if (!nl)
			break;
		size_t end = (size_t)(nl - s->line.data);
		line_take(s, s->line.data + start, end - start);
		start = end + 1;
	}
	if (start) {
		memmove(s->line.data, s->line.data + start, s->line.len - start);
		s->line.len -= start;
	}
	collect_pump(s);
	if (collect_full(s)) {
		/* Resumed by collect_pump once a page is read and tasks end. */
		s->paused = true;
		return HTTP_CHUNK_PAUSE;
	}
	return 0;
}

static void on_results_retry(uv_timer_t *timer)
{
	results_next(timer->data);
}

static void on_results_done(void *opaque, const struct http_response *resp)
{
	struct batch_sub *s = opaque;
	if (s->e->closing)
		return;
	if (resp->error != HTTP_OK || resp->status < 200 || resp->status >= 300) {
		/* Read again (its answers already taken are skipped). */
		log_warn("batch results download failed, retrying", "token", s->token, NULL);
		s->line.len = 0;
		s->streaming = s->paused = false;
		batch_sub_later(s, 2000, on_results_retry);
		return;
	}
	if (s->line.len)
		line_take(s, s->line.data, s->line.len);
	s->line.len = 0;
	s->paused = false;
	s->file_over = true; /* the next file once its requests are read */
	collect_pump(s);
}

/* Reads the next results file, or ends the reading: the inline answers,
 * then every request without a result. */
static void results_next(struct batch_sub *s)
{
	struct engine *e = s->e;
	const struct provider_conf *p = &e->cfg->providers[s->provider];
	if (s->results_i < s->n_results) {
		struct http_request req = {0};
		provider_batch_results_request(p, s->results[s->results_i], &req);
		s->streaming = true;
		s->paused = s->file_over = false;
		http_pool_stream(e->pools[s->provider], &req, RESULTS_TIMEOUT_MS, on_results_chunk,
		                 on_results_done, s);
		return;
	}
	if (s->inline_results && s->status.len) {
		struct provider_batch_inline it;
		struct provider_batch_result res = {0};
		provider_batch_inline_open(&it, p, s->status.data, s->status.len);
		while (provider_batch_inline_next(&it, &e->cfg->models[s->model], &res))
			result_take(s, &res);
		provider_batch_result_clear(&res);
		provider_batch_inline_close(&it);
	}
	/* Then every request with no result: it did not run. */
	s->sweeping = true;
	s->sweep_i = 0;
	collect_pump(s);
}

/* ---------------------------------------------------------------- the tasks' ends */

void task_batch_settled(struct task *t)
{
	if (++t->e->batcher->settled == 1)
		batch_stop_at("batch_mid_collect");
}

void task_batch_gone(struct task *t)
{
	struct batch_sub *s = t->bsub;
	t->bsub = NULL;
	s->open_tasks--;
	if (s->lines_done)
		batch_collect_check(s);
	else
		collect_pump(s); /* from within task_free: it only sends and starts timers */
}
