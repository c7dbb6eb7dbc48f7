/* fuzz_config: a configuration file (SPEC §8) through config_load.
 *
 * Each input is written to one file in a temporary directory of this
 * process, next to a copy of deploy/models.cfg so that @include "models.cfg"
 * reads a real catalog. The keys' environment variables of the seeds are
 * set, so that both a provider with its key and one without are loaded.
 *
 * Checked beyond the sanitizers: a refusal says where, and a loaded config's
 * references resolve.
 *
 * tests/fuzz/config.options turns libFuzzer's leak check per input off (see
 * there); a leak still fails the run at its end. */
#include "config.h"
#include "fuzz.h"
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char dir[64] = "/tmp/promptyard-fuzz-config.XXXXXX";
static char path[128];

static void remove_dir(void)
{
	char p[160];
	snprintf(p, sizeof p, "%s/models.cfg", dir);
	unlink(p);
	unlink(path);
	rmdir(dir);
}

/* Copies from to to; returns 0 or -1. */
static int copy_file(const char *from, const char *to)
{
	char chunk[4096];
	size_t n;
	int rc = -1;
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	if (!in || !out)
		goto out;
	while ((n = fread(chunk, 1, sizeof chunk, in)) > 0)
		if (fwrite(chunk, 1, n, out) != n)
			goto out;
	rc = ferror(in) ? -1 : 0;
out:
	if (in)
		fclose(in);
	if (out && fclose(out) != 0)
		rc = -1;
	return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!mkdtemp(dir)) {
		perror("fuzz_config: mkdtemp");
		exit(1);
	}
	snprintf(path, sizeof path, "%s/promptyard.cfg", dir);
	char models[160];
	snprintf(models, sizeof models, "%s/models.cfg", dir);
	if (copy_file("deploy/models.cfg", models) != 0) {
		fprintf(stderr, "fuzz_config: cannot copy deploy/models.cfg (run from the "
		                "repository root)\n");
		remove_dir();
		exit(1);
	}
	atexit(remove_dir);
	log_set_level(LOG_OFF);
	setenv("OPENAI_API_KEY", "sk-fuzz-0123456789abcdef", 1);
	setenv("PROMPTYARD_TEST_OPENAI_KEY", "sk-fuzz-0123456789abcdef", 1);
	setenv("PROMPTYARD_TEST_REDIS_PW", "fuzz-password", 1);
	return 0;
}

static void check_loaded(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_models; i++) {
		const struct model_conf *m = &cfg->models[i];
		FUZZ_CHECK(m->name && m->id);
		FUZZ_CHECK(m->provider >= 0 && (size_t)m->provider < cfg->n_providers);
		FUZZ_CHECK(config_model_index(cfg, m->name) == (int)i);
	}
	for (size_t i = 0; i < cfg->n_providers; i++)
		FUZZ_CHECK(cfg->providers[i].ops != NULL);
	for (size_t i = 0; i < cfg->n_budgets; i++) {
		const struct budget_conf *b = &cfg->budgets[i];
		FUZZ_CHECK(b->parent >= -1 && b->parent < (int)cfg->n_budgets);
		FUZZ_CHECK(config_budget_index(cfg, b->name) == (int)i);
	}
	for (size_t i = 0; i < cfg->n_rules; i++)
		for (size_t k = 0; k < cfg->rules[i].n_models; k++)
			FUZZ_CHECK(cfg->rules[i].models[k] >= 0 &&
			           (size_t)cfg->rules[i].models[k] < cfg->n_models);
	if (cfg->n_budgets > 0)
		FUZZ_CHECK(config_budget_index(cfg, cfg->worker.default_budget) >= 0);
	if (*cfg->router.classifier_model)
		FUZZ_CHECK(config_model_index(cfg, cfg->router.classifier_model) >= 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024];
	FILE *f = fopen(path, "wb");
	FUZZ_CHECK(f != NULL);
	FUZZ_CHECK(fwrite(data, 1, size, f) == size || size == 0);
	FUZZ_CHECK(fclose(f) == 0);

	struct config *cfg = config_load(path, 0, err, sizeof err);
	if (cfg) {
		check_loaded(cfg);
		config_free(cfg);
	} else {
		/* "FILE:LINE: ..." or "FILE: ..."; FILE is the path given, or an
		 * @include'd file as the directive names it. */
		FUZZ_CHECK(err[0] != '\0' && err[0] != ':' && strstr(err, ": ") != NULL);
	}
	return 0;
}
