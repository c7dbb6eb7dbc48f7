/* Unit tests of the complexity heuristic on the labelled prompts of
 * tests/prompts/labelled.jsonl, and of the classifier's job and reply.
 *
 * Each line of the set is {"tier": "easy"|"medium"|"hard", "obvious": bool,
 * "prompt": "..."} or {"tier", "obvious", "messages": [...]}. The heuristic
 * must put at least 90% of them in their tier, every obvious one included.
 * PROMPTYARD_VERBOSE=1 prints every score. */
#include "complexity.h"
#include "config.h"
#include "job.h"
#include "unit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LABELLED "tests/prompts/labelled.jsonl"

static struct provider_conf providers[1] = {
        {.name = "a",
         .type = "openai",
         .base_url = "http://a",
         .api_key_env = "",
         .timeout_ms = 1000},
};
static struct model_conf models[1] = {
        {.name = "judge",
         .provider = 0,
         .id = "judge",
         .context_tokens = 128000,
         .default_max_tokens = 100,
         .quality = 0.5,
         .latency_ms = 100},
};
static struct budget_conf budgets[1] = {{.name = "default", .limit_nusd = 1000, .parent = -1}};
static struct config cfg;

static void setup(void)
{
	cfg.providers = providers;
	cfg.n_providers = 1;
	cfg.models = models;
	cfg.n_models = 1;
	cfg.budgets = budgets;
	cfg.n_budgets = 1;
	cfg.worker.max_job_bytes = 1 << 20;
	cfg.worker.default_strategy = STRATEGY_AUTO;
	cfg.worker.default_budget = "default";
	cfg.router.classifier_model = "judge";
}

/* Decodes one labelled line into job (with an id added). */
static int labelled_job(json_t *row, struct job *job)
{
	json_t *j = json_deep_copy(row);
	json_object_del(j, "tier");
	json_object_del(j, "obvious");
	json_object_set_new(j, "id", json_string("x"));
	char *s = json_dumps(j, JSON_COMPACT);
	char err[256];
	int rc = job_decode(&cfg, s, strlen(s), job, err, sizeof err);
	if (rc != 0)
		UNIT_FAIL("job_decode: %s", err);
	free(s);
	json_decref(j);
	return rc;
}

TEST(labelled_set_accuracy)
{
	FILE *f = fopen(LABELLED, "r");
	if (!f) {
		UNIT_FAIL("cannot open %s (run from the repository's root)", LABELLED);
		return;
	}
	bool verbose = getenv("PROMPTYARD_VERBOSE") != NULL;
	char *line = NULL;
	size_t cap = 0;
	int total = 0, right = 0, obvious = 0, per_tier[3] = {0}, right_tier[3] = {0};
	while (getline(&line, &cap, f) > 0) {
		json_error_t jerr;
		json_t *row = json_loads(line, 0, &jerr);
		if (!row) {
			UNIT_FAIL("%s:%d: %s", LABELLED, jerr.line, jerr.text);
			continue;
		}
		const char *want = json_string_value(json_object_get(row, "tier"));
		bool is_obvious = json_is_true(json_object_get(row, "obvious"));
		struct job job;
		if (labelled_job(row, &job) == 0) {
			struct complexity_features fe;
			double s = complexity_score(&job, &fe);
			const char *got = complexity_tier(s);
			int t = strcmp(want, "easy") == 0 ? 0 : strcmp(want, "medium") == 0 ? 1 : 2;
			total++;
			per_tier[t]++;
			if (strcmp(got, want) == 0) {
				right++;
				right_tier[t]++;
			}
			CHECK(s >= 0 && s <= 1);
			if (is_obvious) {
				obvious++;
				/* The obvious ones are on the right side by a margin. */
				if (t == 0 && s >= COMPLEXITY_EASY_BELOW - 0.05)
					UNIT_FAIL("obviously easy scored %.3f: %.60s", s,
					          job.messages[job.n_messages - 1].content);
				if (t == 2 && s < COMPLEXITY_HARD_FROM + 0.05)
					UNIT_FAIL("obviously hard scored %.3f: %.60s", s,
					          job.messages[job.n_messages - 1].content);
			}
			if (verbose || strcmp(got, want) != 0)
				printf("  %-6s %-6s %.3f len=%.2f code=%.2f math=%.2f reason=%.2f "
				       "task=%.2f q=%.2f cons=%.2f easy=%.2f | %.50s\n",
				       want, got, s, fe.length, fe.code, fe.math, fe.reasoning,
				       fe.task, fe.questions_ev, fe.constraints, fe.easy,
				       job.messages[job.n_messages - 1].content);
		}
		job_clear(&job);
		json_decref(row);
	}
	free(line);
	fclose(f);
	printf("  labelled: %d/%d in their tier (easy %d/%d, medium %d/%d, hard %d/%d), %d "
	       "obvious\n",
	       right, total, right_tier[0], per_tier[0], right_tier[1], per_tier[1], right_tier[2],
	       per_tier[2], obvious);
	CHECK(total >= 60);
	CHECK(right * 10 >= total * 9);
	CHECK(obvious >= 15);
}

TEST(score_is_deterministic_and_bounded)
{
	const char *text = "Prove step by step that sqrt(2) is irrational.";
	double a = complexity_score_text(text, strlen(text), NULL);
	double b = complexity_score_text(text, strlen(text), NULL);
	CHECK(a == b);
	CHECK(complexity_score_text("", 0, NULL) < COMPLEXITY_EASY_BELOW);
	/* A word repeated cannot make a prompt hard on its own. */
	struct buf_s {
		char s[8192];
	} big;
	size_t n = 0;
	while (n + 6 < sizeof big.s) {
		memcpy(big.s + n, "prove ", 6);
		n += 6;
	}
	double r = complexity_score_text(big.s, n, NULL);
	CHECK(r >= 0 && r <= 1);
	/* Bytes that are not text (NUL, high bytes) are harmless. */
	char junk[256];
	for (int i = 0; i < 256; i++)
		junk[i] = (char)i;
	r = complexity_score_text(junk, sizeof junk, NULL);
	CHECK(r >= 0 && r <= 1);
}

TEST(length_alone_moves_the_score)
{
	char *text = malloc(20000);
	for (int i = 0; i < 20000; i++)
		text[i] = "lorem ipsum dolor sit amet "[i % 27];
	double short_ = complexity_score_text(text, 100, NULL);
	double long_ = complexity_score_text(text, 20000, NULL);
	CHECK(long_ > short_);
	free(text);
}

TEST(classifier_reply_parsing)
{
	double s = -1;
	CHECK_INT(complexity_parse_reply("0.7", 3, &s), 0);
	CHECK(s == 0.7);
	CHECK_INT(complexity_parse_reply(" 1\n", 3, &s), 0);
	CHECK(s == 1);
	CHECK_INT(complexity_parse_reply("\"0.25\"", 6, &s), 0);
	CHECK(s == 0.25);
	CHECK_INT(complexity_parse_reply("0.3.", 4, &s), 0);
	CHECK(s == 0.3);
	CHECK_INT(complexity_parse_reply("85%", 3, &s), 0);
	CHECK(s > 0.849 && s < 0.851);
	CHECK_INT(complexity_parse_reply(".5", 2, &s), 0);
	CHECK(s == 0.5);
	CHECK_INT(complexity_parse_reply("", 0, &s), -1);
	CHECK_INT(complexity_parse_reply("1.5", 3, &s), -1);
	CHECK_INT(complexity_parse_reply("-0.2", 4, &s), -1);
	CHECK_INT(complexity_parse_reply("hard", 4, &s), -1);
	CHECK_INT(complexity_parse_reply("0.7 because", 11, &s), -1);
	CHECK_INT(complexity_parse_reply("0.7", 2, &s), 0); /* only len bytes count */
	CHECK(s == 0.0);
	CHECK_INT(complexity_parse_reply("..", 2, &s), -1);
}

TEST(classifier_job_is_a_valid_job)
{
	struct job job, cj;
	char err[256];
	const char *v =
	        "{\"id\":\"j1\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
	        "{\"role\":\"user\",\"content\":\"Prove Fermat's little theorem.\"}]}";
	CHECK_INT(job_decode(&cfg, v, strlen(v), &job, err, sizeof err), 0);
	CHECK_INT(complexity_classifier_job(&cfg, &job, &cj, err, sizeof err), 0);
	CHECK_INT(cj.n_messages, 2);
	CHECK_INT(cj.messages[0].role, ROLE_SYSTEM);
	CHECK_STR(cj.messages[0].content, COMPLEXITY_CLASSIFIER_PROMPT);
	CHECK_HAS(cj.messages[1].content, "[system] be brief\n[user] Prove Fermat");
	CHECK_INT(cj.max_tokens, COMPLEXITY_CLASSIFIER_MAX_TOKENS);
	CHECK_INT(cj.model, 0);
	CHECK(cj.has_temperature && cj.temperature == 0);
	job_clear(&cj);
	job_clear(&job);

	/* A long prompt is cut below the limit on a character boundary. */
	size_t n = 3 * COMPLEXITY_CLASSIFIER_INPUT_BYTES;
	char *big = malloc(n + 64);
	size_t k = (size_t)snprintf(big, 64, "{\"id\":\"j2\",\"prompt\":\"");
	for (size_t i = 0; i < n / 2; i++) {
		big[k++] = '\xc3'; /* é */
		big[k++] = '\xa9';
	}
	memcpy(big + k, "\"}", 3);
	CHECK_INT(job_decode(&cfg, big, strlen(big), &job, err, sizeof err), 0);
	CHECK_INT(complexity_classifier_job(&cfg, &job, &cj, err, sizeof err), 0);
	CHECK(cj.messages[1].content_len <= COMPLEXITY_CLASSIFIER_INPUT_BYTES);
	CHECK(cj.messages[1].content_len > COMPLEXITY_CLASSIFIER_INPUT_BYTES - 8);
	job_clear(&cj);
	job_clear(&job);
	free(big);
}

/* A fixed workload: one hard prompt scored 20,000 times. Every score and
 * every feature equals the first (no state carries from one call to the
 * next), the prompt is hard, and each feature that its wording should raise
 * is raised. The time per score is printed for a human, never judged. */
TEST(fixed_workload)
{
	const char *text =
	        "Design the architecture of a multi-region, strongly consistent key-value store. "
	        "Explain the replication protocol, how you handle network partitions and leader "
	        "failover, the trade-offs versus eventual consistency, and estimate the write "
	        "latency "
	        "across three regions. Justify each design decision.";
	size_t len = strlen(text);
	struct complexity_features first, f;
	double score = complexity_score_text(text, len, &first);
	CHECK_STR(complexity_tier(score), "hard");
	CHECK_INT(first.bytes, len);
	CHECK(first.reasoning > 0 && first.task > 0 && first.constraints > 0);
	CHECK(first.math == 0 && first.easy == 0 && first.questions == 0);
	struct timespec a, b;
	int n = 20000, differ = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++) {
		double s = complexity_score_text(text, len, &f);
		differ += s != score || f.raw != first.raw || f.bytes != first.bytes;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK_INT(differ, 0);
	double us =
	        ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / n;
	printf("  complexity score of a %zu-byte prompt: %.3f (%s), %.2f us (not judged)\n", len,
	       score, complexity_tier(score), us);
}

int main(void)
{
	setup();
	RUN(labelled_set_accuracy);
	RUN(score_is_deterministic_and_bounded);
	RUN(length_alone_moves_the_score);
	RUN(classifier_reply_parsing);
	RUN(classifier_job_is_a_valid_job);
	RUN(fixed_workload);
	return unit_done();
}
