/* config: reading and validating the configuration file (SPEC §8).
 *
 * The file is parsed by libconfig, then walked section by section into a
 * struct config that owns copies of everything, so libconfig's tree is gone
 * when config_load() returns. Checking stops at the first problem, which is
 * reported as "FILE:LINE: KEY: problem" with KEY the dotted path of the setting
 * ("models[3].provider"); a key that is missing is reported at the line of the
 * group that should hold it. Unknown keys are only warned about, so that a
 * config written for a newer worker still loads on an older one.
 * *
 * The file's pieces: config_read.c (typed values and errors),
 * config_names.c (enum names), config_provider.c (providers and models),
 * this file (the other sections, linking names, load and free). */
#include "config.h"

#include "config_int.h"

#include "buf.h"
#include "log.h"
#include "provider_registry.h"

#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int load_kafka(struct loader *ld, const config_setting_t *g, struct config *cfg)
{
	static const char *const known[] = {"brokers",       "group",       "input_topics",
	                                    "results_topic", "costs_topic", "dlq_topic",
	                                    "properties",    NULL};
	const config_setting_t *topics = NULL, *props = NULL;
	size_t n;

	config_read_warn_unknown(ld, g, known);
	if (config_read_dup_nonempty(ld, g, "brokers", "127.0.0.1:9092", &cfg->kafka.brokers) < 0 ||
	    config_read_dup_nonempty(ld, g, "group", "promptyard", &cfg->kafka.group) < 0 ||
	    config_read_dup_nonempty(ld, g, "results_topic", "llm.results",
	                             &cfg->kafka.results_topic) < 0 ||
	    config_read_dup_nonempty(ld, g, "costs_topic", "llm.costs", &cfg->kafka.costs_topic) <
	            0 ||
	    config_read_dup_nonempty(ld, g, "dlq_topic", "llm.dlq", &cfg->kafka.dlq_topic) < 0 ||
	    config_read_str_list(ld, g, "input_topics", &topics) < 0 ||
	    config_read_str_list(ld, g, "properties", &props) < 0)
		return -1;

	if (!topics) {
		cfg->kafka.input_topics = xcalloc(1, sizeof(char *));
		cfg->kafka.input_topics[0] = xstrdup("llm.jobs");
		cfg->kafka.n_input_topics = 1;
	} else {
		n = (size_t)config_setting_length(topics);
		if (n == 0)
			return config_read_fail(ld, g, "input_topics",
			                        "must name at least one topic");
		cfg->kafka.input_topics = xcalloc(n, sizeof(char *));
		cfg->kafka.n_input_topics = n;
		for (size_t i = 0; i < n; i++) {
			const char *t = config_setting_get_string_elem(topics, (int)i);
			if (!*t)
				return config_read_fail(
				        ld, config_setting_get_elem(topics, (unsigned)i), NULL,
				        "must not be empty");
			cfg->kafka.input_topics[i] = xstrdup(t);
		}
	}

	n = props ? (size_t)config_setting_length(props) : 0;
	cfg->kafka.property_keys = xcalloc(n, sizeof(char *));
	cfg->kafka.property_values = xcalloc(n, sizeof(char *));
	cfg->kafka.n_properties = n;
	for (size_t i = 0; i < n; i++) {
		const char *p = config_setting_get_string_elem(props, (int)i);
		const char *eq = strchr(p, '=');
		if (!eq || eq == p)
			return config_read_fail(ld, config_setting_get_elem(props, (unsigned)i),
			                        NULL,
			                        "must be \"key=value\" (a librdkafka property)");
		cfg->kafka.property_keys[i] = xstrndup(p, (size_t)(eq - p));
		cfg->kafka.property_values[i] = xstrdup(eq + 1);
	}
	return 0;
}

/* Is s "host:port" with a port from 1 to 65535 (an IPv6 host in brackets)? */
static bool is_host_port(const char *s)
{
	return *s && config_read_is_listen_addr(s);
}

static int load_redis(struct loader *ld, const config_setting_t *g, struct config *cfg)
{
	/* "password" is known in order to be refused, not warned about. */
	static const char *const known[] = {"host",
	                                    "port",
	                                    "password_env",
	                                    "password",
	                                    "db",
	                                    "key_prefix",
	                                    "timeout_ms",
	                                    "username",
	                                    "sentinels",
	                                    "sentinel_master",
	                                    "min_replicas_acked",
	                                    NULL};
	const config_setting_t *sentinels = NULL;
	const char *username = NULL, *master = NULL;

	config_read_warn_unknown(ld, g, known);
	if (config_read_refuse_secret(ld, g, "password", "password_env") < 0 ||
	    config_read_dup_nonempty(ld, g, "host", "127.0.0.1", &cfg->redis.host) < 0 ||
	    config_read_int(ld, g, "port", 6379, 1, 65535, &cfg->redis.port) < 0 ||
	    config_read_int(ld, g, "db", 0, 0, 1000000, &cfg->redis.db) < 0 ||
	    config_read_dup(ld, g, "key_prefix", "promptyard:", &cfg->redis.key_prefix) < 0 ||
	    config_read_ms(ld, g, "timeout_ms", 1000, &cfg->redis.timeout_ms) < 0 ||
	    config_read_str(ld, g, "username", &username) < 0 ||
	    config_read_str_list(ld, g, "sentinels", &sentinels) < 0 ||
	    config_read_str(ld, g, "sentinel_master", &master) < 0 ||
	    config_read_int(ld, g, "min_replicas_acked", 1, 0, 100,
	                    &cfg->redis.min_replicas_acked) < 0)
		return -1;
	if (username && *username)
		cfg->redis.username = xstrdup(username);
	size_t n = sentinels ? (size_t)config_setting_length(sentinels) : 0;
	cfg->redis.sentinels = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		const char *hp = config_setting_get_string_elem(sentinels, (int)i);
		if (!is_host_port(hp))
			return config_read_fail(ld, config_setting_get_elem(sentinels, (unsigned)i),
			                        NULL, "must be \"host:port\"");
		cfg->redis.sentinels[cfg->redis.n_sentinels++] = xstrdup(hp);
	}
	if (n && (!master || !*master))
		return config_read_fail(
		        ld, g, "sentinel_master",
		        "is required with sentinels (the name the sentinels monitor)");
	if (master && *master && !n)
		return config_read_fail(ld, g, "sentinels", "are required with sentinel_master");
	if (n)
		cfg->redis.sentinel_master = xstrdup(master);
	/* A password the operator asked for but did not provide is always an
	 * error: unlike a provider key, nothing works without Redis. */
	return config_read_secret(ld, g, "password_env", true, &cfg->redis.password_env,
	                          &cfg->redis.password, NULL);
}

static int load_worker(struct loader *ld, const config_setting_t *g, struct config *cfg)
{
	static const char *const known[] = {"max_in_flight",
	                                    "default_strategy",
	                                    "default_budget",
	                                    "max_attempts",
	                                    "retry_same",
	                                    "max_retry_after_ms",
	                                    "on_budget_exhausted",
	                                    "drain_timeout_ms",
	                                    "max_job_bytes",
	                                    "dedupe_ttl_s",
	                                    "metrics_listen",
	                                    "log_level",
	                                    "max_response_bytes",
	                                    "default_mode",
	                                    "max_fetch_bytes",
	                                    "fetch_ca_file",
	                                    NULL};
	const char *v = NULL;
	enum log_level level;

	config_read_warn_unknown(ld, g, known);
	if (config_read_int(ld, g, "max_in_flight", 1000, 1, 100000, &cfg->worker.max_in_flight) <
	            0 ||
	    config_read_int(ld, g, "max_attempts", 4, 1, 20, &cfg->worker.max_attempts) < 0 ||
	    config_read_int(ld, g, "retry_same", 0, 0, 10, &cfg->worker.retry_same) < 0)
		return -1;
	if (config_read_int64(ld, g, "max_retry_after_ms", 30000, 0, MS_MAX,
	                      &cfg->worker.max_retry_after_ms) < 0 ||
	    config_read_ms(ld, g, "drain_timeout_ms", 30000, &cfg->worker.drain_timeout_ms) < 0 ||
	    config_read_int64(ld, g, "max_job_bytes", MIB, 1, 64 * MIB,
	                      &cfg->worker.max_job_bytes) < 0 ||
	    config_read_int64(ld, g, "dedupe_ttl_s", 172800, 1, 31536000,
	                      &cfg->worker.dedupe_ttl_s) < 0 ||
	    config_read_int64(ld, g, "max_response_bytes", 8 * MIB, 1, 1024 * MIB,
	                      &cfg->worker.max_response_bytes) < 0 ||
	    config_read_int64(ld, g, "max_fetch_bytes", 20 * MIB, 1, 1024 * MIB,
	                      &cfg->worker.max_fetch_bytes) < 0)
		return -1;
	if (config_read_dup_nonempty(ld, g, "default_budget", "default",
	                             &cfg->worker.default_budget) < 0 ||
	    config_read_dup(ld, g, "metrics_listen", "127.0.0.1:9464",
	                    &cfg->worker.metrics_listen) < 0 ||
	    config_read_dup_nonempty(ld, g, "log_level", "info", &cfg->worker.log_level) < 0)
		return -1;

	if (config_read_str(ld, g, "default_strategy", &v) < 0)
		return -1;
	cfg->worker.default_strategy = STRATEGY_BALANCED;
	if (v && strategy_parse(v, &cfg->worker.default_strategy) < 0)
		return config_read_fail(
		        ld, g, "default_strategy",
		        "must be one of cheapest, balanced, fastest, reliable, auto");

	if (config_read_str(ld, g, "default_mode", &v) < 0)
		return -1;
	cfg->worker.default_mode = MODE_SYNC;
	if (v && mode_parse(v, &cfg->worker.default_mode) < 0)
		return config_read_fail(ld, g, "default_mode", "must be one of sync, batch, auto");

	if (config_read_str(ld, g, "on_budget_exhausted", &v) < 0)
		return -1;
	cfg->worker.on_budget_exhausted = ON_EXHAUSTED_FAIL;
	if (v && strcmp(v, "pause") == 0)
		cfg->worker.on_budget_exhausted = ON_EXHAUSTED_PAUSE;
	else if (v && strcmp(v, "fail") != 0)
		return config_read_fail(ld, g, "on_budget_exhausted",
		                        "must be \"fail\" or \"pause\"");

	if (!config_read_is_listen_addr(cfg->worker.metrics_listen))
		return config_read_fail(ld, g, "metrics_listen",
		                        "must be \"\" (no HTTP endpoint) or \"host:port\"");
	if (log_level_parse(cfg->worker.log_level, &level) < 0)
		return config_read_fail(ld, g, "log_level",
		                        "must be one of debug, info, warn, error, off");

	if (config_read_str(ld, g, "fetch_ca_file", &v) < 0)
		return -1;
	if (v && *v && access(v, R_OK) != 0)
		return config_read_fail(ld, g, "fetch_ca_file", "cannot read %s: %s", v,
		                        strerror(errno));
	if (v && *v)
		cfg->worker.fetch_ca_file = xstrdup(v);
	return 0;
}

static int load_router(struct loader *ld, const config_setting_t *g, struct config *cfg)
{
	static const char *const known[] = {"balanced_slack",
	                                    "window_s",
	                                    "breaker_failures",
	                                    "breaker_cooldown_ms",
	                                    "auto_floor",
	                                    "classifier_model",
	                                    NULL};

	config_read_warn_unknown(ld, g, known);
	if (config_read_double(ld, g, "balanced_slack", 0.10, 0, 1, &cfg->router.balanced_slack) <
	            0 ||
	    config_read_int64(ld, g, "window_s", 300, 1, 604800, &cfg->router.window_s) < 0 ||
	    config_read_int(ld, g, "breaker_failures", 5, 1, 1000000,
	                    &cfg->router.breaker_failures) < 0 ||
	    config_read_ms(ld, g, "breaker_cooldown_ms", 30000, &cfg->router.breaker_cooldown_ms) <
	            0 ||
	    config_read_double(ld, g, "auto_floor", 0.3, 0, 1, &cfg->router.auto_floor) < 0 ||
	    config_read_dup(ld, g, "classifier_model", "", &cfg->router.classifier_model) < 0)
		return -1;
	return 0;
}

static int load_batch(struct loader *ld, const config_setting_t *g, struct config *cfg)
{
	static const char *const known[] = {"max_requests",
	                                    "max_wait_ms",
	                                    "poll_interval_s",
	                                    "min_lead_s",
	                                    "fallback_lead_s",
	                                    "default_window_s",
	                                    NULL};
	const int64_t year_s = 31536000;

	config_read_warn_unknown(ld, g, known);
	if (config_read_int(ld, g, "max_requests", 10000, 1, 100000, &cfg->batch.max_requests) <
	            0 ||
	    config_read_ms(ld, g, "max_wait_ms", 60000, &cfg->batch.max_wait_ms) < 0 ||
	    config_read_int64(ld, g, "poll_interval_s", 60, 1, 86400, &cfg->batch.poll_interval_s) <
	            0 ||
	    config_read_int64(ld, g, "min_lead_s", 3600, 1, year_s, &cfg->batch.min_lead_s) < 0 ||
	    config_read_int64(ld, g, "fallback_lead_s", 1800, 0, year_s,
	                      &cfg->batch.fallback_lead_s) < 0 ||
	    config_read_int64(ld, g, "default_window_s", 86400, 1, year_s,
	                      &cfg->batch.default_window_s) < 0)
		return -1;
	/* A job is batched only when complete_by is min_lead_s away, and its batch
	 * is given up fallback_lead_s before it: the second must be shorter, or
	 * a batch would be canceled as soon as it is sent. */
	if (cfg->batch.fallback_lead_s >= cfg->batch.min_lead_s)
		return config_read_fail(ld, g, "fallback_lead_s",
		                        "must be less than min_lead_s (%lld)",
		                        (long long)cfg->batch.min_lead_s);
	return 0;
}

static int load_budget(struct loader *ld, const config_setting_t *g, struct config *cfg, size_t i)
{
	static const char *const known[] = {"name", "limit_usd", "period", "parent", NULL};
	struct budget_conf *b = &cfg->budgets[i];
	const char *period = NULL;

	config_read_warn_unknown(ld, g, known);
	b->line = config_read_line(g);
	b->parent = -1;
	if (config_read_dup_nonempty(ld, g, "name", NULL, &b->name) < 0)
		return -1;
	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->budgets[j].name, b->name) == 0)
			return config_read_fail(ld, g, "name",
			                        "duplicate budget name \"%s\" (first at line %d)",
			                        b->name, cfg->budgets[j].line);
	if (config_read_usd(ld, g, "limit_usd", USD_REQUIRED, &b->limit_nusd) < 0 ||
	    config_read_str(ld, g, "period", &period) < 0)
		return -1;
	if (b->limit_nusd > MONEY_MAX_NUSD) {
		char max[32];
		money_format_usd(MONEY_MAX_NUSD, max, sizeof max);
		return config_read_fail(
		        ld, g, "limit_usd",
		        "must be at most %s USD (2^53 - 1 nano-USD, the most the ledger's "
		        "scripts compare exactly)",
		        max);
	}
	if (period && period_parse(period, &b->period) < 0)
		return config_read_fail(ld, g, "period", "must be one of none, day, month");
	return 0;
}

#define BUDGET_CHAIN_MAX 4

/* Resolves every parent name, then walks each chain: it must end (no cycle)
 * within BUDGET_CHAIN_MAX budgets, the budget itself included. */
static int link_budgets(struct loader *ld, const config_setting_t *list, struct config *cfg)
{
	struct buf chain = {0};
	bool *seen = NULL;
	int rc = -1;

	for (size_t i = 0; i < cfg->n_budgets; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		const char *parent = NULL;

		if (config_read_str(ld, g, "parent", &parent) < 0)
			goto out;
		if (!parent || !*parent)
			continue;
		cfg->budgets[i].parent = config_budget_index(cfg, parent);
		if (cfg->budgets[i].parent < 0) {
			config_read_fail(ld, g, "parent", "no budget named \"%s\"", parent);
			goto out;
		}
	}
	seen = xcalloc(cfg->n_budgets, sizeof(bool));
	for (size_t i = 0; i < cfg->n_budgets; i++) {
		size_t len = 0;
		bool cycle = false;

		memset(seen, 0, cfg->n_budgets * sizeof(bool));
		buf_reset(&chain);
		for (int cur = (int)i; cur >= 0; cur = cfg->budgets[cur].parent) {
			buf_printf(&chain, "%s%s", len ? " -> " : "", cfg->budgets[cur].name);
			if (seen[cur]) {
				cycle = true;
				break;
			}
			seen[cur] = true;
			len++;
		}
		if (cycle || len > BUDGET_CHAIN_MAX) {
			config_read_fail(ld, config_setting_get_elem(list, (unsigned)i), "parent",
			                 cycle ? "parent chain %s is a cycle"
			                       : "parent chain %s is longer than 4 budgets",
			                 chain.data);
			goto out;
		}
	}
	rc = 0;
out:
	buf_free(&chain);
	free(seen);
	return rc;
}

/* Builds the JSON object of a rule's metadata group: strings, numbers and
 * booleans only, as the job's metadata values they are compared with. */
static int load_rule_metadata(struct loader *ld, const config_setting_t *g, json_t **out)
{
	const config_setting_t *md = config_setting_get_member(g, "metadata");
	json_t *obj = NULL;
	int n;

	*out = NULL;
	if (!md)
		return 0;
	if (!config_setting_is_group(md))
		return config_read_fail(ld, g, "metadata",
		                        "must be a group: metadata = { key = \"value\"; };");
	obj = json_object();
	n = config_setting_length(md);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(md, (unsigned)i);
		json_t *v = NULL;

		switch (config_setting_type(e)) {
		case CONFIG_TYPE_STRING:
			v = json_string(config_setting_get_string(e));
			if (!v) {
				json_decref(obj);
				return config_read_fail(ld, e, NULL, "must be valid UTF-8");
			}
			break;
		case CONFIG_TYPE_INT:
		case CONFIG_TYPE_INT64:
			v = json_integer((json_int_t)config_setting_get_int64(e));
			break;
		case CONFIG_TYPE_FLOAT: v = json_real(config_setting_get_float(e)); break;
		case CONFIG_TYPE_BOOL: v = json_boolean(config_setting_get_bool(e)); break;
		default:
			json_decref(obj);
			return config_read_fail(ld, e, NULL,
			                        "must be a string, a number or a boolean");
		}
		json_object_set_new(obj, config_setting_name(e), v);
	}
	*out = obj;
	return 0;
}

static int load_rule(struct loader *ld, const config_setting_t *g, struct config *cfg, size_t i)
{
	static const char *const known[] = {"name",     "match",    "ignore_case", "models",
	                                    "strategy", "metadata", NULL};
	struct rule_conf *r = &cfg->rules[i];
	const config_setting_t *models = NULL;
	const char *match = NULL, *strategy = NULL;
	enum strategy st;
	int rc;

	config_read_warn_unknown(ld, g, known);
	r->line = config_read_line(g);
	r->strategy = -1;
	if (config_read_dup_nonempty(ld, g, "name", NULL, &r->name) < 0)
		return -1;
	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->rules[j].name, r->name) == 0)
			return config_read_fail(ld, g, "name",
			                        "duplicate rule name \"%s\" (first at line %d)",
			                        r->name, cfg->rules[j].line);
	if (config_read_str(ld, g, "match", &match) < 0 ||
	    config_read_bool(ld, g, "ignore_case", false, &r->ignore_case) < 0 ||
	    load_rule_metadata(ld, g, &r->metadata) < 0)
		return -1;
	if (match && !*match)
		return config_read_fail(
		        ld, g, "match",
		        "must not be empty (leave it out to match on metadata only)");
	if (!match && (!r->metadata || json_object_size(r->metadata) == 0))
		return config_read_fail(ld, g, NULL, "needs match or metadata (or both)");

	/* r->match is set only once r->re is compiled: config_free() relies on it. */
	if (match) {
		rc = regcomp(&r->re, match,
		             REG_EXTENDED | REG_NOSUB | (r->ignore_case ? REG_ICASE : 0));
		if (rc != 0) {
			char msg[256];
			regerror(rc, &r->re, msg, sizeof msg);
			return config_read_fail(ld, g, "match", "bad regular expression: %s", msg);
		}
		r->match = xstrdup(match);
	}

	if (config_read_str_list(ld, g, "models", &models) < 0)
		return -1;
	if (models) {
		r->n_models = (size_t)config_setting_length(models);
		if (r->n_models == 0)
			return config_read_fail(
			        ld, g, "models",
			        "must name at least one model (leave it out to keep them all)");
		r->models = xcalloc(r->n_models, sizeof(int));
		for (size_t k = 0; k < r->n_models; k++) {
			const char *name = config_setting_get_string_elem(models, (int)k);
			r->models[k] = config_model_index(cfg, name);
			if (r->models[k] < 0)
				return config_read_fail(
				        ld, config_setting_get_elem(models, (unsigned)k), NULL,
				        "no model named \"%s\"", name);
		}
	}

	if (config_read_str(ld, g, "strategy", &strategy) < 0)
		return -1;
	if (strategy) {
		if (strategy_parse(strategy, &st) < 0)
			return config_read_fail(
			        ld, g, "strategy",
			        "must be one of cheapest, balanced, fastest, reliable, auto");
		r->strategy = (int)st;
	}
	return 0;
}

/* Checks that hold between sections: names that point into the lists. */
static int link_names(struct loader *ld, const config_setting_t *worker,
                      const config_setting_t *router, struct config *cfg)
{
	/* Budgets may also live only in Redis (promptyard budget set): a config
	 * with no budget at all does not need to name its default, but one that
	 * lists budgets, or names a default, must have it among them. */
	if ((cfg->n_budgets > 0 || config_setting_get_member(worker, "default_budget")) &&
	    config_budget_index(cfg, cfg->worker.default_budget) < 0)
		return config_read_fail(ld, worker, "default_budget", "no budget named \"%s\"",
		                        cfg->worker.default_budget);
	if (*cfg->router.classifier_model &&
	    config_model_index(cfg, cfg->router.classifier_model) < 0)
		return config_read_fail(ld, router, "classifier_model", "no model named \"%s\"",
		                        cfg->router.classifier_model);
	return 0;
}

/* Loads one list of groups (providers, models, ...) with one loader per element. */
static int load_list(struct loader *ld, const config_setting_t *list, size_t n, struct config *cfg,
                     int (*load)(struct loader *, const config_setting_t *, struct config *,
                                 size_t))
{
	for (size_t i = 0; i < n; i++)
		if (load(ld, config_setting_get_elem(list, (unsigned)i), cfg, i) < 0)
			return -1;
	return 0;
}

/* ---------------------------------------------------------------- public */

/* libconfig 1.5 opens "@include NAME" as include_dir/NAME and, when that is
 * a directory (`@include ""` names the include directory itself), exits the
 * process from its scanner ("input in flex scanner failed"); a device or a
 * FIFO would hang it. So the includes of path, nested ones too, are checked
 * first (found by tests/fuzz/fuzz_config): a NAME that exists must be a
 * regular file. A missing one, an include cycle and nesting past libconfig's
 * 10 levels are left to libconfig's own errors; *files bounds the files read
 * here (a file that includes itself twice would otherwise be read 2^10
 * times). dir is the include directory, or NULL. Returns 0, or -1 with
 * "FILE:LINE: @include "NAME": not a regular file" written. */
static int check_includes(const char *path, const char *dir, int depth, int *files, char *errstr,
                          size_t errstr_size)
{
	FILE *f = depth < 10 && (*files)++ < 100 ? fopen(path, "r") : NULL;
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = 0;

	while (f && rc == 0 && getline(&line, &cap, f) >= 0) {
		const char *p = line + strspn(line, " \t");
		struct buf full = {0};
		size_t blank, name_at;
		struct stat st;
		lineno++;
		if (strncmp(p, "@include", 8) != 0)
			continue;
		blank = strspn(p + 8, " \t");
		if (blank == 0 || p[8 + blank] != '"')
			continue;
		buf_printf(&full, "%s%s", dir ? dir : "", dir ? "/" : "");
		name_at = full.len;
		/* The name as libconfig's scanner reads it: \\ and \" escaped. */
		for (p += 8 + blank + 1; *p && *p != '"'; p++) {
			if (*p == '\\' && (p[1] == '\\' || p[1] == '"'))
				p++;
			buf_append(&full, p, 1);
		}
		if (stat(full.data, &st) == 0 && !S_ISREG(st.st_mode)) {
			if (errstr && errstr_size)
				snprintf(errstr, errstr_size,
				         "%s:%d: @include \"%s\": not a regular file", path, lineno,
				         full.data + name_at);
			rc = -1;
		} else if (stat(full.data, &st) == 0) {
			rc = check_includes(full.data, dir, depth + 1, files, errstr, errstr_size);
		}
		buf_free(&full);
	}
	free(line);
	if (f)
		fclose(f);
	return rc;
}

struct config *config_load(const char *path, int flags, char *errstr, size_t errstr_size)
{
	static const char *const known[] = {"kafka",     "redis",  "worker",  "router", "batch",
	                                    "providers", "models", "budgets", "rules",  NULL};
	struct loader ld = {
	        .path = path, .flags = flags, .errstr = errstr, .errstr_size = errstr_size};
	const config_setting_t *kafka = NULL, *redis = NULL, *worker = NULL, *router = NULL;
	const config_setting_t *batch = NULL;
	const config_setting_t *providers = NULL, *models = NULL, *budgets = NULL, *rules = NULL;
	struct config *cfg = NULL;
	config_setting_t *root = NULL;
	config_t lc;
	char *dir = NULL, *slash = NULL;
	struct stat st;
	int err;

	if (errstr && errstr_size)
		errstr[0] = '\0';
	config_init(&lc);
	/* libconfig would read a directory as an empty file: every default. */
	err = 0;
	if (stat(path, &st) != 0)
		err = errno;
	else if (S_ISDIR(st.st_mode))
		err = EISDIR;
	if (err) {
		if (errstr && errstr_size)
			snprintf(errstr, errstr_size, "%s: cannot read: %s", path, strerror(err));
		goto out;
	}
	/* @include "models.cfg" is read relative to the including file. */
	dir = xstrdup(path);
	slash = strrchr(dir, '/');
	if (slash) {
		slash[slash == dir ? 1 : 0] = '\0';
		config_set_include_dir(&lc, dir);
	}
	if (check_includes(path, slash ? dir : NULL, 0, &(int){0}, errstr, errstr_size) < 0)
		goto out;
	if (!config_read_file(&lc, path)) {
		err = errno;
		if (!errstr || !errstr_size)
			goto out;
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
			snprintf(errstr, errstr_size, "%s: cannot read: %s", path, strerror(err));
		else
			snprintf(errstr, errstr_size, "%s:%d: syntax error (%s)",
			         config_error_file(&lc) ? config_error_file(&lc) : path,
			         config_error_line(&lc), config_error_text(&lc));
		goto out;
	}

	cfg = xcalloc(1, sizeof *cfg);
	cfg->path = xstrdup(path);
	root = config_root_setting(&lc);
	config_read_warn_unknown(&ld, root, known);
	if (config_read_section(&ld, root, "kafka", &kafka) < 0 ||
	    config_read_section(&ld, root, "redis", &redis) < 0 ||
	    config_read_section(&ld, root, "worker", &worker) < 0 ||
	    config_read_section(&ld, root, "router", &router) < 0 ||
	    config_read_section(&ld, root, "batch", &batch) < 0 ||
	    config_read_group_list(&ld, root, "providers", &providers, &cfg->n_providers) < 0 ||
	    config_read_group_list(&ld, root, "models", &models, &cfg->n_models) < 0 ||
	    config_read_group_list(&ld, root, "budgets", &budgets, &cfg->n_budgets) < 0 ||
	    config_read_group_list(&ld, root, "rules", &rules, &cfg->n_rules) < 0)
		goto out;
	/* Every element is zeroed before any is read, so config_free() can take a
	 * half-loaded config apart. */
	cfg->providers = xcalloc(cfg->n_providers, sizeof *cfg->providers);
	cfg->models = xcalloc(cfg->n_models, sizeof *cfg->models);
	cfg->budgets = xcalloc(cfg->n_budgets, sizeof *cfg->budgets);
	cfg->rules = xcalloc(cfg->n_rules, sizeof *cfg->rules);

	if (load_kafka(&ld, kafka, cfg) < 0 || load_redis(&ld, redis, cfg) < 0 ||
	    load_worker(&ld, worker, cfg) < 0 || load_router(&ld, router, cfg) < 0 ||
	    load_batch(&ld, batch, cfg) < 0 ||
	    load_list(&ld, providers, cfg->n_providers, cfg, config_load_provider) < 0 ||
	    load_list(&ld, models, cfg->n_models, cfg, config_load_model) < 0 ||
	    load_list(&ld, budgets, cfg->n_budgets, cfg, load_budget) < 0 ||
	    (budgets && link_budgets(&ld, budgets, cfg) < 0) ||
	    load_list(&ld, rules, cfg->n_rules, cfg, load_rule) < 0 ||
	    link_names(&ld, worker, router, cfg) < 0)
		goto out;
	config_destroy(&lc);
	free(dir);
	return cfg;

out:
	config_free(cfg);
	config_destroy(&lc);
	free(dir);
	return NULL;
}

/* Frees a string that may hold a secret, wiping it first. */
static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);

	free(cfg->kafka.brokers);
	free(cfg->kafka.group);
	for (size_t i = 0; i < cfg->kafka.n_input_topics; i++)
		free(cfg->kafka.input_topics[i]);
	free(cfg->kafka.input_topics);
	free(cfg->kafka.results_topic);
	free(cfg->kafka.costs_topic);
	free(cfg->kafka.dlq_topic);
	for (size_t i = 0; i < cfg->kafka.n_properties; i++) {
		free(cfg->kafka.property_keys[i]);
		/* a property may be a credential (sasl.password) */
		free_secret(cfg->kafka.property_values[i]);
	}
	free(cfg->kafka.property_keys);
	free(cfg->kafka.property_values);

	free(cfg->redis.host);
	free(cfg->redis.password_env);
	free_secret(cfg->redis.password);
	free(cfg->redis.key_prefix);
	free(cfg->redis.username);
	for (size_t i = 0; i < cfg->redis.n_sentinels; i++)
		free(cfg->redis.sentinels[i]);
	free(cfg->redis.sentinels);
	free(cfg->redis.sentinel_master);

	free(cfg->worker.default_budget);
	free(cfg->worker.metrics_listen);
	free(cfg->worker.log_level);
	free(cfg->worker.fetch_ca_file);
	free(cfg->router.classifier_model);

	for (size_t i = 0; i < cfg->n_providers; i++) {
		struct provider_conf *p = &cfg->providers[i];
		free(p->name);
		free(p->type);
		free(p->base_url);
		free(p->api_key_env);
		free_secret(p->api_key);
		for (size_t k = 0; k < p->n_headers; k++)
			free_secret(p->headers[k]);
		free(p->headers);
		free(p->auth_header);
		free(p->ca_file);
		free(p->query);
		free(p->region);
		free_secret(p->aws_access_key_id);
		free_secret(p->aws_secret_access_key);
		free_secret(p->aws_session_token);
		free(p->missing_env);
	}
	free(cfg->providers);
	for (size_t i = 0; i < cfg->n_models; i++) {
		free(cfg->models[i].name);
		free(cfg->models[i].id);
	}
	free(cfg->models);
	for (size_t i = 0; i < cfg->n_budgets; i++)
		free(cfg->budgets[i].name);
	free(cfg->budgets);
	for (size_t i = 0; i < cfg->n_rules; i++) {
		struct rule_conf *r = &cfg->rules[i];
		free(r->name);
		if (r->match) {
			regfree(&r->re);
			free(r->match);
		}
		json_decref(r->metadata);
		free(r->models);
	}
	free(cfg->rules);
	free(cfg);
}

void config_assume_credentials(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_providers; i++) {
		free(cfg->providers[i].missing_env);
		cfg->providers[i].missing_env = NULL;
	}
}

int config_override_redis(struct config *cfg, const char *hostport)
{
	const char *colon = strrchr(hostport, ':');
	if (!colon || colon == hostport)
		return -1;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return -1;
	free(cfg->redis.host);
	cfg->redis.host = xstrndup(hostport, (size_t)(colon - hostport));
	cfg->redis.port = (int)port;
	/* The command line names the server itself: no sentinel is asked. */
	for (size_t i = 0; i < cfg->redis.n_sentinels; i++)
		free(cfg->redis.sentinels[i]);
	cfg->redis.n_sentinels = 0;
	free(cfg->redis.sentinel_master);
	cfg->redis.sentinel_master = NULL;
	return 0;
}
