/* config: the configuration file of SPEC §8, read with libconfig and checked.
 *
 * config_load() returns a fully validated, immutable struct config: every key
 * has its value or its default, every name reference (model -> provider,
 * budget -> parent, rule -> models) is resolved to an index, and secrets named
 * by *_env keys are read from the environment. Errors read
 * "FILE:LINE: KEY: problem"; unknown keys are warned about on stderr (through
 * log) and otherwise ignored. */
#ifndef PROMPTYARD_CONFIG_H
#define PROMPTYARD_CONFIG_H

#include "money.h"

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct provider; /* provider.h: the wire format's function table */

enum strategy {
	STRATEGY_CHEAPEST,
	STRATEGY_BALANCED,
	STRATEGY_FASTEST,
	STRATEGY_RELIABLE,
	STRATEGY_AUTO
};
#define STRATEGY_COUNT 5

/* Capabilities a model may have and a job may require (bit mask). */
enum capability {
	CAP_JSON = 1u << 0,
	CAP_TOOLS = 1u << 1,
	CAP_VISION = 1u << 2,
	CAP_LONG_CONTEXT = 1u << 3,
};

enum period { PERIOD_NONE, PERIOD_DAY, PERIOD_MONTH };
enum on_exhausted { ON_EXHAUSTED_FAIL, ON_EXHAUSTED_PAUSE };

/* Name <-> value tables; each returns 0 and sets *out, or -1 for an unknown name. */
int strategy_parse(const char *name, enum strategy *out);
const char *strategy_name(enum strategy s);
int capability_parse(const char *name, unsigned *bit);
int period_parse(const char *name, enum period *out);
const char *period_name(enum period p);

struct provider_conf {
	char *name;
	char *type;                 /* "openai", "anthropic", "gemini" */
	const struct provider *ops; /* the table for type (borrowed, static) */
	char *base_url;             /* without a trailing slash */
	char *api_key_env;          /* "" sends no key */
	char *api_key;              /* the key read from the environment, NULL if none */
	bool optional;              /* extension: a missing key makes the models ineligible
				       instead of being a configuration error */
	int64_t timeout_ms;         /* default 120000 */
	int max_connections;        /* default 64 */
	int64_t rpm, tpm;           /* 0 = unlimited */
	int line;
};

struct model_conf {
	char *name;   /* catalog name, unique */
	int provider; /* index into config.providers */
	char *id;     /* the provider's model id; default: name */
	struct price price;
	int64_t context_tokens;     /* default 128000 */
	int64_t default_max_tokens; /* default 1024 */
	double quality;             /* [0,1], default 0.5 */
	int64_t latency_ms;         /* configured typical latency, default 1000 */
	unsigned caps;              /* enum capability bits */
	bool max_completion_tokens; /* extension (openai): send max_completion_tokens */
	int line;
};

struct budget_conf {
	char *name;
	int64_t limit_nusd;
	enum period period;
	int parent; /* index into config.budgets, -1 for none */
	int line;
};

struct rule_conf {
	char *name;
	char *match; /* NULL if the rule has no regex */
	bool ignore_case;
	regex_t re;       /* compiled when match != NULL (REG_EXTENDED|REG_NOSUB) */
	json_t *metadata; /* object of required equal values, NULL if none (new ref) */
	int *models;      /* indexes into config.models */
	size_t n_models;  /* 0: the rule does not narrow the models */
	int strategy;     /* enum strategy, or -1 when the rule does not set one */
	int line;
};

struct config {
	char *path;

	struct {
		char *brokers;
		char *group;
		char **input_topics;
		size_t n_input_topics;
		char *results_topic;
		char *costs_topic;
		char *dlq_topic;
		char **property_keys; /* from properties = ["k=v", ...] */
		char **property_values;
		size_t n_properties;
	} kafka;

	struct {
		char *host;
		int port;
		char *password_env;
		char *password; /* read from the environment, NULL if none */
		int db;
		char *key_prefix;
		int64_t timeout_ms;
	} redis;

	struct {
		int max_in_flight;
		enum strategy default_strategy;
		char *default_budget;
		int max_attempts;
		int retry_same;
		int64_t max_retry_after_ms;
		enum on_exhausted on_budget_exhausted;
		int64_t drain_timeout_ms;
		int64_t max_job_bytes;
		int64_t dedupe_ttl_s;
		char *metrics_listen;
		char *log_level;
		int64_t max_response_bytes; /* extension: larger provider bodies are invalid_response */
	} worker;

	struct {
		double balanced_slack;
		int64_t window_s;
		int breaker_failures;
		int64_t breaker_cooldown_ms;
		double auto_floor;
		char *classifier_model; /* "" for none */
	} router;

	struct provider_conf *providers;
	size_t n_providers;
	struct model_conf *models;
	size_t n_models;
	struct budget_conf *budgets;
	size_t n_budgets;
	struct rule_conf *rules;
	size_t n_rules;
};

/* What config_load should insist on. */
enum config_flags {
	/* A provider whose api_key_env names an unset or empty variable is an error
	 * (the worker). Without it such a provider is kept with api_key = NULL (the
	 * command line tools, which call no provider). */
	CONFIG_REQUIRE_KEYS = 1 << 0,
};

/* Reads and validates path. On success returns a new config (config_free() it).
 * On error returns NULL and writes "FILE:LINE: KEY: problem" to errstr. */
struct config *config_load(const char *path, int flags, char *errstr, size_t errstr_size);
void config_free(struct config *cfg);

/* Applies a command line's --redis HOST:PORT. Returns 0, or -1 (nothing
 * changed) if hostport is not one. */
int config_override_redis(struct config *cfg, const char *hostport);

/* Index of the named entry, or -1. */
int config_model_index(const struct config *cfg, const char *name);
int config_budget_index(const struct config *cfg, const char *name);
int config_provider_index(const struct config *cfg, const char *name);

#endif
