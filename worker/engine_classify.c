/* engine_classify: auto's classifier call (SPEC §6). With
 * router.classifier_model set, a job of strategy auto first asks that model
 * how hard it is ("a single number from 0 to 1"), as attempt 0, charged to
 * the job; the route is then made again on its score.
 *
 * The call goes the way of every attempt (engine_attempt.c, task_call):
 * health admits it, it waits for a slot of its provider, its estimate is
 * reserved on the job's budget (the reservation looks the job up, and hands
 * out attempt 0, or a new number when the job runs again after a crash: a
 * classifier asked again is charged again), and it is settled at its cost.
 * What differs is the way out: a classifier that cannot be asked now (its
 * circuit open, its provider rate-limited, the job's cap or the budget
 * unable to cover it) is skipped, and the heuristic's score stands. */
#include "engine_int.h"

#include "complexity.h"
#include "redis.h"
#include "timeutil.h"

#include <string.h>

void task_classifier_end(struct task *t, bool answered)
{
	double score = 0;
	bool have_score = answered && t->completion.content &&
	                  complexity_parse_reply(t->completion.content,
	                                         strlen(t->completion.content), &score) == 0;
	completion_clear(&t->completion);
	t->classifying = false;
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

/* Skipped before its reservation: the call does not go out. */
static void classifier_skip(struct task *t)
{
	http_request_clear(&t->pending_req);
	t->pending_model = -1;
	task_classifier_end(t, false);
}

/* Acts on health's verdict for the classifier's model: a classifier that
 * is rate-limited or whose circuit is open is not worth a wait. */
static void classifier_verdict(struct task *t, enum health_verdict v)
{
	switch (v) {
	case HEALTH_GO: task_call(t); return;
	case HEALTH_PENDING: t->admit_pending = true; return;
	case HEALTH_LIMITED:
	case HEALTH_CIRCUIT_OPEN: break;
	}
	classifier_skip(t);
}

static void on_classifier_admitted(void *opaque, enum health_verdict v, int64_t retry_ms)
{
	struct task *t = opaque;
	(void)retry_ms;
	t->admit_pending = false;
	classifier_verdict(t, v);
}

static void classifier_admit(struct task *t)
{
	int64_t retry_ms = 0;
	enum health_verdict v = health_admit(t->e->health, t->pending_model, t->pending_tokens,
	                                     on_classifier_admitted, t, &retry_ms);
	classifier_verdict(t, v);
}

void task_classify(struct task *t, int ci)
{
	struct engine *e = t->e;
	const struct model_conf *m = &e->cfg->models[ci];
	const struct provider_conf *p = &e->cfg->providers[m->provider];
	struct job cj;
	char err[256];
	int64_t estimate = -1, tokens = 0;
	if (!redis_ready(e->redis)) {
		/* The job's attempts wait for Redis; the heuristic serves them. */
		task_attempt(t);
		return;
	}
	http_request_clear(&t->pending_req);
	if (complexity_classifier_job(e->cfg, &t->job, &cj, err, sizeof err) == 0) {
		int64_t input = router_est_input(&cj);
		tokens = input + COMPLEXITY_CLASSIFIER_MAX_TOKENS;
		estimate = router_estimate(m, input, COMPLEXITY_CLASSIFIER_MAX_TOKENS);
		/* Charged to the job: it must fit what is left of max_cost_usd. */
		if (t->job.max_cost_nusd && t->cost_nusd + estimate > t->job.max_cost_nusd)
			estimate = -1;
		else if (p->ops->build_request(p, m, &cj, COMPLEXITY_CLASSIFIER_MAX_TOKENS,
		                               &t->pending_req, err, sizeof err) != 0)
			estimate = -1;
	}
	job_clear(&cj);
	if (estimate < 0) {
		http_request_clear(&t->pending_req);
		task_attempt(t);
		return;
	}
	t->classifying = true;
	t->pending_model = ci;
	t->pending_estimate_nusd = estimate;
	t->pending_tokens = tokens;
	classifier_admit(t);
}
