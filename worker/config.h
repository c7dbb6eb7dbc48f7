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
	CAP_JSON_SCHEMA = 1u << 4,
	CAP_PDF = 1u << 5,
	CAP_REASONING = 1u << 6,
};
#define CAPABILITY_COUNT 7

/* How a job is run (SPEC §14): the synchronous API, a provider batch, or
 * batch when complete_by is far enough away. */
enum job_mode { MODE_SYNC, MODE_BATCH, MODE_AUTO };

enum period { PERIOD_NONE, PERIOD_DAY, PERIOD_MONTH };
enum on_exhausted { ON_EXHAUSTED_FAIL, ON_EXHAUSTED_PAUSE };

/* Name <-> value tables; each returns 0 and sets *out, or -1 for an unknown name. */
int strategy_parse(const char *name, enum strategy *out);
const char *strategy_name(enum strategy s);
int capability_parse(const char *name, unsigned *bit);
/* The name of one capability bit ("json_schema"), or "?". */
const char *capability_name(unsigned bit);
/* Writes the names of the bits of caps, comma-separated, to out (always
 * NUL-terminated; "" for none). Returns out. */
const char *capability_list(unsigned caps, char *out, size_t out_size);
int mode_parse(const char *name, enum job_mode *out);
const char *mode_name(enum job_mode m);
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
	bool batch;                 /* the provider's batch API may be used (SPEC §14) */
	/* Extra "Name: value" header lines sent on every call (SPEC §15), with
	 * every ${NAME} replaced by that environment variable. A line that had
	 * one holds a secret: never log these; wiped when freed. */
	char **headers;
	size_t n_headers;
	char *auth_header; /* the header that carries the key; NULL: the type's default */
	char *ca_file;     /* PEM bundle to trust for this provider; NULL: the system's */
	char *query;       /* "a=b&c=d" added to every URL; NULL for none */
	char *region;      /* AWS region (bedrock); NULL otherwise */
	/* AWS credentials (bedrock), read from AWS_ACCESS_KEY_ID,
	 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; NULL when unset. Secrets. */
	char *aws_access_key_id, *aws_secret_access_key, *aws_session_token;
	/* The environment variable a call needs and lacks (api_key_env, a ${NAME}
	 * of headers, the AWS keys; new), NULL when none is missing. Only an
	 * optional provider, or a config loaded without CONFIG_REQUIRE_KEYS, can
	 * have one; its models are then ineligible (SPEC §6). */
	char *missing_env;
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
	bool structured_outputs;    /* extension (anthropic): json_schema as native structured
	                               outputs (output_config.format), not a forced tool */
	int64_t max_output_tokens;  /* caps a job's max_tokens; 0 = no cap (SPEC §16) */
	int64_t image_tokens;       /* estimate per image (SPEC §13), default 1600 */
	int64_t pdf_page_tokens;    /* estimate per PDF page, default 3000 */
	/* reasoning_effort low/medium/high as thinking tokens (SPEC §13). */
	int64_t thinking_budget[3];
	/* Prices at the provider's batch API (SPEC §14): the batch_* keys, each
	 * defaulting to half the sync price (rounded up) when the provider has
	 * batch = true. has_batch_price is false when the provider has no batch. */
	struct price batch_price;
	bool has_batch_price;
	int line;
};

/* reasoning_effort levels, indexes of model_conf.thinking_budget. */
enum reasoning_effort { EFFORT_NONE = -1, EFFORT_LOW = 0, EFFORT_MEDIUM = 1, EFFORT_HIGH = 2 };
int reasoning_effort_parse(const char *name, enum reasoning_effort *out);
const char *reasoning_effort_name(enum reasoning_effort e);

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
		char *username; /* ACL user (SPEC §15); NULL for the default user */
		/* Sentinels ("host:port") asked for sentinel_master's address;
		 * n_sentinels == 0: host and port are the server itself. */
		char **sentinels;
		size_t n_sentinels;
		char *sentinel_master;  /* NULL without sentinels */
		int min_replicas_acked; /* WAIT for this many replicas per ledger step
		                           (with sentinels only), default 1 */
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
		enum job_mode default_mode; /* SPEC §14, default sync */
		int64_t max_fetch_bytes;    /* a part fetched by URL, at most; default 20 MiB */
		/* Extension: the PEM bundle the worker's fetches of URL parts
		 * trust instead of the system's (a corporate CA); NULL: the
		 * system's. */
		char *fetch_ca_file;
	} worker;

	struct {                     /* SPEC §14 */
		int max_requests;    /* a batch is submitted at this many jobs, default 10000 */
		int64_t max_wait_ms; /* or when its oldest has waited this long, default 60000 */
		int64_t poll_interval_s;  /* default 60 */
		int64_t min_lead_s;       /* auto: batch only when complete_by is this far, 3600 */
		int64_t fallback_lead_s;  /* cancel a batch this long before complete_by, 1800 */
		int64_t default_window_s; /* complete_by defaults to now + this, 86400 */
	} batch;

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

/* Applies a command line's --redis HOST:PORT: that server itself, so any
 * sentinels of the file are dropped. Returns 0, or -1 (nothing changed) if
 * hostport is not one. */
int config_override_redis(struct config *cfg, const char *hostport);

/* For tools that call no provider (route, estimate): every provider's
 * credentials are taken as present, so routing shows what a worker with
 * them would do. */
void config_assume_credentials(struct config *cfg);

/* Index of the named entry, or -1. */
int config_model_index(const struct config *cfg, const char *name);
int config_budget_index(const struct config *cfg, const char *name);
int config_provider_index(const struct config *cfg, const char *name);

#endif
