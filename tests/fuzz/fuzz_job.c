/* fuzz_job: a Kafka message value through job_decode (SPEC §2), and a job
 * that decodes through everything that reads it next: each wire format's
 * request, the complexity heuristic and the classifier's job.
 *
 * Checked beyond the sanitizers: a refusal names a field, in valid UTF-8,
 * and keeps only root and id; an accepted job obeys job.h field by field;
 * every request body is JSON and never carries the API key. */
#include "complexity.h"
#include "fuzz.h"
#include "job.h"
#include "provider.h"

#include <string.h>

#define FUZZ_KEY "sk-fuzz-0123456789abcdef"

static const struct config *cfg;

/* Budgets that exist in Redis alone, as the worker's lookup would say. */
static bool redis_budget_known(void *opaque, const char *name)
{
	(void)opaque;
	return strncmp(name, "redis-", 6) == 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("PROMPTYARD_FUZZ_KEY", FUZZ_KEY, 1);
	cfg = fuzz_load_config("tests/fuzz/fuzz_job.cfg");
	job_set_budget_lookup(redis_budget_known, NULL);
	return 0;
}

static void check_refused(const struct job *job, const char *err)
{
	FUZZ_CHECK(err[0] != '\0');
	FUZZ_CHECK(strstr(err, ": ") != NULL);
	FUZZ_CHECK(fuzz_utf8_valid(err, strlen(err)));
	FUZZ_CHECK(!job->messages && !job->n_messages && !job->models && !job->n_models);
	FUZZ_CHECK(job->model == -1 && job->budget == -1);
	FUZZ_CHECK(!job->metadata && !job->metadata_json && !job->stop);
	if (job->id) {
		FUZZ_CHECK(job->root != NULL);
		size_t n = strlen(job->id);
		FUZZ_CHECK(n >= 1 && n <= JOB_ID_MAX);
	}
}

static void check_accepted(const struct job *job)
{
	size_t bytes = 0;
	FUZZ_CHECK(job->root && job->id);
	FUZZ_CHECK(strlen(job->id) >= 1 && strlen(job->id) <= JOB_ID_MAX);
	FUZZ_CHECK(job->n_messages >= 1 && job->messages);
	for (size_t i = 0; i < job->n_messages; i++) {
		const struct job_message *m = &job->messages[i];
		FUZZ_CHECK(m->content && strlen(m->content) == m->content_len);
		FUZZ_CHECK(fuzz_utf8_valid(m->content, m->content_len));
		FUZZ_CHECK(m->role == ROLE_SYSTEM || m->role == ROLE_USER ||
		           m->role == ROLE_ASSISTANT || m->role == ROLE_TOOL);
		for (size_t k = 0; k < m->n_parts; k++)
			FUZZ_CHECK(m->parts[k].msg == i && m->parts[k].index == k);
		bytes += m->content_len;
	}
	FUZZ_CHECK(bytes == job->content_bytes);
	FUZZ_CHECK(job->model >= -1 && job->model < (int)cfg->n_models);
	for (size_t i = 0; i < job->n_models; i++) {
		FUZZ_CHECK(job->models[i] >= 0 && job->models[i] < (int)cfg->n_models);
		for (size_t k = 0; k < i; k++)
			FUZZ_CHECK(job->models[k] != job->models[i]);
	}
	FUZZ_CHECK((unsigned)job->strategy < STRATEGY_COUNT);
	FUZZ_CHECK(job->max_cost_nusd >= 0);
	FUZZ_CHECK(job->budget_name != NULL);
	if (job->budget >= 0)
		FUZZ_CHECK(job->budget < (int)cfg->n_budgets &&
		           strcmp(cfg->budgets[job->budget].name, job->budget_name) == 0);
	else
		FUZZ_CHECK(job->budget == -1 && redis_budget_known(NULL, job->budget_name));
	FUZZ_CHECK(job->max_tokens >= 0 && job->max_tokens <= JOB_MAX_TOKENS_MAX);
	FUZZ_CHECK(!job->has_temperature ||
	           (job->temperature >= 0 && job->temperature <= JOB_TEMPERATURE_MAX));
	FUZZ_CHECK(!job->has_top_p || (job->top_p >= 0 && job->top_p <= 1));
	FUZZ_CHECK(job->deadline_ms >= 0);
	FUZZ_CHECK(!job->metadata == !job->metadata_json);
	FUZZ_CHECK(!job->metadata_json || strlen(job->metadata_json) <= JOB_METADATA_MAX);
}

/* The job's pinned model when it is of provider type p, else the first model
 * of that type. */
static const struct model_conf *model_for(const struct job *job, const struct provider *p)
{
	if (job->model >= 0 && cfg->providers[cfg->models[job->model].provider].ops == p)
		return &cfg->models[job->model];
	for (size_t i = 0; i < cfg->n_models; i++)
		if (cfg->providers[cfg->models[i].provider].ops == p)
			return &cfg->models[i];
	return NULL;
}

/* What the worker does before building a request for a format that cannot
 * take a part by URL: fetch it (here: a 1x1 PNG, a PDF of one page). */
static void fetch_url_parts(struct job *job)
{
	static const unsigned char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1";
	static const unsigned char pdf[] = "%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n";
	char err[256];
	for (size_t i = 0; i < job->n_parts; i++) {
		struct job_part *p = &job->parts[i];
		if (!p->url)
			continue;
		bool image = p->type == PART_IMAGE;
		FUZZ_CHECK(job_part_set_fetched(
		                   job, p, image ? png : pdf, (image ? sizeof png : sizeof pdf) - 1,
		                   image ? "image/png" : "application/pdf", err, sizeof err) == 0);
	}
}

static void check_requests(const struct job *job)
{
	/* The key may only be in a body that carries it because the job does
	 * (libFuzzer learns strings from strstr). */
	char *text = json_dumps(job->root, JSON_COMPACT);
	bool job_has_key = text && strstr(text, FUZZ_KEY);
	free(text);
	static const struct provider *const formats[] = {&provider_openai, &provider_anthropic,
	                                                 &provider_gemini};
	for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
		const struct model_conf *m = model_for(job, formats[i]);
		FUZZ_CHECK(m != NULL);
		const struct provider_conf *p = &cfg->providers[m->provider];
		struct http_request req = {0};
		char err[256];
		if (formats[i]->build_request(p, m, job, job->max_tokens, &req, err, sizeof err) ==
		    0) {
			json_error_t jerr;
			json_t *body = json_loadb(req.body.data, req.body.len, 0, &jerr);
			if (!body)
				fprintf(stderr, "%s: body is not JSON (%s): %.*s\n",
				        formats[i]->type, jerr.text, (int)req.body.len,
				        req.body.data);
			FUZZ_CHECK(body != NULL);
			json_decref(body);
			FUZZ_CHECK(job_has_key || strstr(req.body.data, FUZZ_KEY) == NULL);
			FUZZ_CHECK(strncmp(req.url.data, p->base_url, strlen(p->base_url)) == 0);
		} else {
			FUZZ_CHECK(fuzz_utf8_valid(err, strlen(err)));
		}
		http_request_clear(&req);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct job job, cj;
	char err[512];
	if (job_decode(cfg, data, size, &job, err, sizeof err) != 0) {
		check_refused(&job, err);
		job_clear(&job);
		return 0;
	}
	check_accepted(&job);
	fetch_url_parts(&job);
	check_requests(&job);
	double score = complexity_score(&job, NULL);
	FUZZ_CHECK(score >= 0 && score <= 1);
	FUZZ_CHECK(complexity_classifier_job(cfg, &job, &cj, err, sizeof err) == 0);
	check_accepted(&cj);
	job_clear(&cj);
	job_clear(&job);
	return 0;
}
