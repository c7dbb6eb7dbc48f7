/* promptyard catalog: model entries from LiteLLM's price map (SPEC §15).
 *
 *   promptyard catalog import FILE [--providers P[=NAME],...]
 *   promptyard catalog check -c CFG FILE
 *
 * FILE is LiteLLM's model_prices_and_context_window.json ("-" for stdin);
 * worker/catalog.c reads it (chat entries only, prices exactly from their
 * decimal text).
 *
 * import prints a libconfig `models = ( ... );` list on stdout:
 *   - --providers selects LiteLLM providers (its "litellm_provider" values:
 *     openai, anthropic, gemini, bedrock, bedrock_converse, groq, deepseek,
 *     mistral, vertex_ai-language-models, ...); P=NAME names the config
 *     provider their models use ("anthropic=my-anthropic"), which is P
 *     itself by default. Several P may share a NAME
 *     ("bedrock=aws,bedrock_converse=aws"). Without --providers every
 *     provider is taken under its own name.
 *   - Each model's name and id are the provider's own id: the LiteLLM key
 *     without its "<provider>/" prefix ("gemini/gemini-2.5-pro" ->
 *     "gemini-2.5-pro"). A name taken by an earlier model becomes
 *     "<provider>/<name>".
 *   - Prices: input_cost_per_token, cache_read_input_token_cost (or
 *     input_cost_per_token_cache_hit), cache_creation_input_token_cost,
 *     output_cost_per_token and the *_batches prices, in USD per million
 *     tokens. Flex, priority, audio, image and per-request prices are not
 *     promptyard's and are left out.
 *   - A model whose prices rise above a prompt size (*_above_<N>k_tokens)
 *     becomes two: "<name>" with context_tokens capped at N thousand, and
 *     "<name>-long" with the higher prices and the whole context, so that
 *     no prompt is estimated at the lower prices.
 *   - context_tokens is max_input_tokens, max_output_tokens the file's
 *     max_output_tokens (max_tokens, a legacy field, is not used);
 *     default_max_tokens 1024 (4096 for reasoning models), at most
 *     max_output_tokens. OpenAI reasoning models get
 *     max_completion_tokens = true.
 *   - capabilities: json and json_schema from supports_response_schema,
 *     tools from supports_function_calling, vision from supports_vision,
 *     pdf from supports_pdf_input, reasoning from supports_reasoning,
 *     long_context for a context of 200000 tokens or more.
 *   - quality and latency_ms are not in the file: 0.5 and 1000, with a
 *     comment asking the user to set them.
 * Warnings (entries skipped, prices rounded) go to stderr; the exit status
 * is 1 when nothing was imported or the file cannot be read or parsed.
 *
 * check compares every configured model with the entry of its id (or
 * name): the input, cached input, cache write and output prices, and the
 * batch prices on a provider with batch = true, in exact nano-USD per
 * million tokens. A model whose context_tokens exceeds the entry's price
 * tier is compared with the tier's prices. Each difference is a line
 * "MODEL: KEY: config $X, file $Y"; a model not in the file is listed but
 * is no failure. Exit status 1 when any price differs, 0 when none does. */
#include "cli.h"

#include "buf.h"
#include "catalog.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Warnings shown before the rest are only counted. */
#define WARNINGS_SHOWN 20

static void usage(FILE *out)
{
	fputs("usage: promptyard catalog import FILE [--providers P[=NAME],...]\n"
	      "       promptyard catalog check -c CFG FILE\n"
	      "\n"
	      "FILE is LiteLLM's model_prices_and_context_window.json (\"-\" for stdin).\n"
	      "\n"
	      "import prints a `models` list of FILE's chat models (mode \"chat\"):\n"
	      "  --providers P[=NAME],...  take only these litellm_provider values (openai,\n"
	      "                            anthropic, gemini, bedrock, bedrock_converse, ...),\n"
	      "                            as config provider NAME (default: P itself)\n"
	      "  name and id: the LiteLLM key without its \"<provider>/\" prefix;\n"
	      "  prices: input, cache read, cache write, output and batch prices, exact;\n"
	      "  prices that rise above N thousand prompt tokens: a second model\n"
	      "  \"<name>-long\", the first capped at that context;\n"
	      "  context_tokens: max_input_tokens; max_output_tokens: max_output_tokens;\n"
	      "  capabilities: json and json_schema (supports_response_schema), tools\n"
	      "  (supports_function_calling), vision, pdf (supports_pdf_input), reasoning,\n"
	      "  long_context (a context of 200000 tokens or more);\n"
	      "  quality 0.5 and latency_ms 1000, which the file lacks: set them.\n"
	      "\n"
	      "check lists every price of CFG's models that differs from FILE\n"
	      "(\"MODEL: KEY: config $X, file $Y\") and exits 1 when any does.\n",
	      out);
}

/* Reads and parses file into c. Returns 0, or 1 after saying why. */
static int load(const char *file, const struct catalog_select *sel, struct catalog *c)
{
	char err[512];
	size_t len = 0;
	char *text = cli_read_file(file, &len);
	if (!text) {
		fprintf(stderr, "promptyard catalog: %s: cannot read: %s\n", file, strerror(errno));
		return 1;
	}
	int rc = catalog_parse(text, len, sel, c, err, sizeof err);
	free(text);
	if (rc != 0) {
		fprintf(stderr, "promptyard catalog: %s:%s\n", file, err);
		return 1;
	}
	return 0;
}

static void print_warnings(const char *file, const struct catalog *c)
{
	for (size_t i = 0; i < c->n_warnings && i < WARNINGS_SHOWN; i++)
		fprintf(stderr, "promptyard catalog: %s:%s\n", file, c->warnings[i]);
	if (c->n_warnings > WARNINGS_SHOWN)
		fprintf(stderr, "promptyard catalog: %s: %zu more warnings\n", file,
		        c->n_warnings - WARNINGS_SHOWN);
}

/* The command line of import and check: argv[0] is the command's name. */
struct args {
	const char *file;      /* FILE */
	const char *config;    /* -c CFG (check) */
	const char *providers; /* --providers (import) */
};

/* Returns 0 with a filled, 1 after --help (exit 0), or 2 after saying what
 * is wrong with the command line. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"providers", required_argument, NULL, 'p'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	bool import = strcmp(argv[0], "import") == 0;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': a->config = optarg; break;
		case 'p': a->providers = optarg; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if ((import && a->config) || (!import && a->providers)) {
		fprintf(stderr, "promptyard catalog %s: %s is for catalog %s\n", argv[0],
		        import ? "-c" : "--providers", import ? "check" : "import");
		return 2;
	}
	if (optind != argc - 1) {
		fprintf(stderr,
		        "promptyard catalog %s: expected one FILE (LiteLLM's "
		        "model_prices_and_context_window.json, or - for stdin)\n",
		        argv[0]);
		return 2;
	}
	a->file = argv[optind];
	return 0;
}

static int catalog_import(const struct args *a)
{
	struct catalog_select sel = {0};
	struct catalog c = {0};
	struct buf out = {0};
	char err[512];
	int rc = 2;

	if (a->providers && catalog_select_parse(a->providers, &sel, err, sizeof err) != 0) {
		fprintf(stderr, "promptyard catalog import: --providers: %s\n", err);
		goto out;
	}
	const char *file = a->file;
	rc = load(file, &sel, &c);
	if (rc != 0)
		goto out;
	for (size_t i = 0; i < sel.n; i++) {
		size_t found = 0;
		for (size_t j = 0; j < c.n; j++)
			found += strcmp(c.v[j].provider, sel.from[i]) == 0;
		if (!found)
			fprintf(stderr,
			        "promptyard catalog: %s: no chat model of litellm_provider "
			        "\"%s\"\n",
			        file, sel.from[i]);
	}
	size_t written = catalog_write_models(&out, &c, &sel, file);
	print_warnings(file, &c);
	fprintf(stderr,
	        "promptyard catalog: %s: %zu models from %zu chat entries (%zu entries; %zu of "
	        "other providers, %zu not chat models, %zu skipped with a warning)\n",
	        file, written, c.n, c.entries, c.unselected, c.not_chat, c.skipped);
	if (!written) {
		fprintf(stderr, "promptyard catalog: %s: nothing to import\n", file);
		rc = 1;
		goto out;
	}
	fputs(out.data, stdout);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	buf_free(&out);
	catalog_clear(&c);
	catalog_select_clear(&sel);
	return rc;
}

/* The configured price of each catalog slot; -1 where m has none to compare. */
static void configured(const struct model_conf *m, int64_t out[CATALOG_PRICES])
{
	const struct price *p = &m->price, *b = &m->batch_price;
	out[CATALOG_INPUT] = p->input_nusd_per_mtok;
	out[CATALOG_CACHED] = p->cached_input_nusd_per_mtok;
	/* Unset, cache writes are priced as input. */
	out[CATALOG_CACHE_WRITE] = p->cache_write_nusd_per_mtok >= 0 ? p->cache_write_nusd_per_mtok
	                                                             : p->input_nusd_per_mtok;
	out[CATALOG_OUTPUT] = p->output_nusd_per_mtok;
	/* Batch prices only count on a provider with batch = true. */
	out[CATALOG_BATCH_INPUT] = m->has_batch_price ? b->input_nusd_per_mtok : -1;
	out[CATALOG_BATCH_CACHED] = m->has_batch_price ? b->cached_input_nusd_per_mtok : -1;
	out[CATALOG_BATCH_OUTPUT] = m->has_batch_price ? b->output_nusd_per_mtok : -1;
}

static int catalog_check(const struct args *a)
{
	const char *file = a->file;
	struct catalog c = {0};
	int rc = 2;

	struct config *cfg = cli_config("catalog check", a->config, NULL, NULL);
	if (!cfg)
		goto out;
	rc = load(file, NULL, &c);
	if (rc != 0)
		goto out;
	print_warnings(file, &c);

	size_t compared = 0, differ = 0, missing = 0;
	for (size_t i = 0; i < cfg->n_models; i++) {
		const struct model_conf *m = &cfg->models[i];
		const struct catalog_entry *e = catalog_match(&c, cfg, m);
		if (!e) {
			printf("%s: not in %s (id \"%s\")\n", m->name, file, m->id);
			missing++;
			continue;
		}
		int64_t want[CATALOG_PRICES], have[CATALOG_PRICES];
		catalog_expected(e, m, want);
		configured(m, have);
		compared++;
		for (int k = 0; k < CATALOG_PRICES; k++) {
			if (want[k] < 0 || have[k] < 0 || want[k] == have[k])
				continue;
			char in_cfg[40], in_file[40];
			cli_usd(have[k], in_cfg, sizeof in_cfg);
			cli_usd(want[k], in_file, sizeof in_file);
			printf("%s: %s: config %s, file %s (LiteLLM \"%s\")\n", m->name,
			       catalog_price_key(k), in_cfg, in_file, e->key);
			differ++;
		}
	}
	printf("%zu model%s checked against %s: %zu price%s differ%s, %zu model%s not in the "
	       "file\n",
	       compared, compared == 1 ? "" : "s", file, differ, differ == 1 ? "" : "s",
	       differ == 1 ? "s" : "", missing, missing == 1 ? "" : "s");
	rc = differ ? 1 : 0;
out:
	catalog_clear(&c);
	config_free(cfg);
	return rc;
}

int cli_catalog(int argc, char **argv)
{
	bool import = argc >= 2 && strcmp(argv[1], "import") == 0;
	if (import || (argc >= 2 && strcmp(argv[1], "check") == 0)) {
		struct args a = {0};
		int rc = parse_args(argc - 1, argv + 1, &a);
		if (rc != 0)
			return rc == 1 ? 0 : 2;
		return import ? catalog_import(&a) : catalog_check(&a);
	}
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2)
		fprintf(stderr, "promptyard catalog: unknown command \"%s\" (import or check)\n",
		        argv[1]);
	else
		fprintf(stderr, "promptyard catalog: expected import or check\n");
	usage(stderr);
	return 2;
}
