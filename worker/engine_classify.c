/* engine_classify: auto's classifier call (SPEC §6). With
 * router.classifier_model set, a job of strategy auto first asks that model
 * how hard it is ("a single number from 0 to 1"), as attempt 0, charged to
 * the job; the route is then made again on its score. */
#include "engine_int.h"

#include "complexity.h"
#include "ledger.h"
#include "metrics.h"
#include "timeutil.h"

#include <stdlib.h>
#include <string.h>

static void on_classifier_settled(void *opaque, redisReply *reply);

/* Routes again on the classifier's score (or keeps the heuristic route) and
 * starts the first real attempt. */
static void classifier_done(struct task *t, bool have_score, double score)
{
	if (t->classifier_job) {
		job_clear(t->classifier_job);
		free(t->classifier_job);
		t->classifier_job = NULL;
	}
	if (have_score) {
		struct route_context ctx = {
		        .cost_left_nusd =
		                t->job.max_cost_nusd ? t->job.max_cost_nusd - t->cost_nusd : -1,
		        .health = t->e->health,
		        .now_ms = time_mono_ms(),
		        .has_complexity = true,
		        .complexity = score,
		};
		router_route(t->e->cfg, &t->job, &ctx, &t->route);
	}
	task_attempt(t);
}

static void settle_classifier(struct task *t)
{
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	ledger_settle_budget(t->e->ledger, t->job.budget_name, t->id, 0, a->cost_nusd, NULL,
	                     on_classifier_settled, t);
}

static void on_classifier_settle_retry(uv_timer_t *timer)
{
	settle_classifier(timer->data);
}

static void on_classifier_settled(void *opaque, redisReply *reply)
{
	struct task *t = opaque;
	if (t->e->closing)
		return;
	struct ledger_settlement st;
	char err[256];
	if (ledger_settle_result(reply, &st, err, sizeof err) != LEDGER_OK) {
		task_later(t, 200, on_classifier_settle_retry);
		return;
	}
	double score = 0;
	bool have = t->completion.content &&
	            complexity_parse_reply(t->completion.content, strlen(t->completion.content),
	                                   &score) == 0;
	completion_clear(&t->completion);
	classifier_done(t, have, score);
}

static void on_classified(void *opaque, const struct http_response *resp)
{
	struct task *t = opaque;
	struct engine *e = t->e;
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	const struct model_conf *m = &e->cfg->models[a->model];
	health_call_end(e->health, &t->call);
	completion_clear(&t->completion);
	t->cls = RESPONSE_RETRYABLE;
	if (resp->error == HTTP_OK)
		t->cls = e->cfg->providers[m->provider].ops->parse_response(
		        m, resp->status, resp->body, resp->body_len, &t->completion);
	a->outcome = engine_outcome_of(resp, t->cls);
	a->http_status = resp->error == HTTP_OK ? resp->status : 0;
	a->latency_ms = resp->latency_ms;
	task_record_health(t, a, m);
	if (!t->completion.has_usage) {
		completion_clear(&t->completion);
		classifier_done(t, false, 0);
		return;
	}
	/* Charged to the job as attempt 0 (SPEC §6). */
	a->billed = true;
	a->usage = t->completion.usage;
	a->cost_nusd = money_cost_nusd(&m->price, &a->usage);
	t->cost_nusd += a->cost_nusd;
	metrics_add(
	        e->metrics, METRIC_SPEND_USD_TOTAL,
	        (const char *[]){t->job.budget_name, e->cfg->providers[m->provider].name, m->name},
	        a->cost_nusd);
	settle_classifier(t);
}

/* Asks router.classifier_model how hard the job is; false when it cannot be
 * asked (the heuristic's route stands). */
bool task_classify(struct task *t, int ci)
{
	struct engine *e = t->e;
	const struct model_conf *m = &e->cfg->models[ci];
	const struct provider_conf *p = &e->cfg->providers[m->provider];
	char err[256];
	struct http_request req = {0};
	t->classifier_job = xcalloc(1, sizeof *t->classifier_job);
	if (complexity_classifier_job(e->cfg, &t->job, t->classifier_job, err, sizeof err) != 0 ||
	    p->ops->build_request(p, m, t->classifier_job, COMPLEXITY_CLASSIFIER_MAX_TOKENS, &req,
	                          err, sizeof err) != 0) {
		http_request_clear(&req);
		job_clear(t->classifier_job);
		free(t->classifier_job);
		t->classifier_job = NULL;
		return false;
	}
	struct attempt_rec *a = task_attempt_new(t); /* the first: never NULL */
	a->number = 0;
	a->model = ci;
	health_call_begin(e->health, ci, &t->call);
	http_pool_start(engine_pools_pick(e->pools, m->provider), &req, p->timeout_ms,
	                on_classified, t);
	return true;
}
