/* config: reading and validating the configuration file (SPEC §8).
 *
 * The file is parsed by libconfig, then walked section by section into a
 * struct config that owns copies of everything, so libconfig's tree is gone
 * when config_load() returns. Checking stops at the first problem, which is
 * reported as "FILE:LINE: KEY: problem" with KEY the dotted path of the setting
 * ("models[3].provider"); a key that is missing is reported at the line of the
 * group that should hold it. Unknown keys are only warned about, so that a
 * config written for a newer worker still loads on an older one.
 *
 * libconfig 1.5 reads an integer literal above 2147483647 without an L suffix
 * as a silently truncated int; nothing here can see that, so no limit needs a
 * value that large except with the suffix (the example file says so). */
#include "config.h"

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

/* ---------------------------------------------------------------- names */

/* One table of names for a small enum: index i is value i. */
static int name_parse(const char *const *names, int n, const char *name, int *out)
{
	for (int i = 0; i < n; i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -1;
}

static const char *const strategy_names[STRATEGY_COUNT] = {"cheapest", "balanced", "fastest",
                                                           "reliable", "auto"};

int strategy_parse(const char *name, enum strategy *out)
{
	int v = 0;
	if (name_parse(strategy_names, STRATEGY_COUNT, name, &v) < 0)
		return -1;
	*out = (enum strategy)v;
	return 0;
}

const char *strategy_name(enum strategy s)
{
	return (unsigned)s < STRATEGY_COUNT ? strategy_names[s] : "?";
}

static const char *const capability_names[CAPABILITY_COUNT] = {
        "json", "tools", "vision", "long_context", "json_schema", "pdf", "reasoning"};

int capability_parse(const char *name, unsigned *bit)
{
	for (unsigned i = 0; i < CAPABILITY_COUNT; i++) {
		if (strcmp(name, capability_names[i]) == 0) {
			*bit = 1u << i;
			return 0;
		}
	}
	return -1;
}

const char *capability_name(unsigned bit)
{
	for (unsigned i = 0; i < CAPABILITY_COUNT; i++)
		if (bit == 1u << i)
			return capability_names[i];
	return "?";
}

const char *capability_list(unsigned caps, char *out, size_t out_size)
{
	size_t at = 0;
	if (!out_size)
		return out;
	out[0] = '\0';
	for (unsigned i = 0; i < CAPABILITY_COUNT; i++) {
		if (!(caps & (1u << i)))
			continue;
		int n = snprintf(out + at, out_size - at, "%s%s", at ? "," : "",
		                 capability_names[i]);
		if (n < 0 || (size_t)n >= out_size - at)
			break;
		at += (size_t)n;
	}
	return out;
}

static const char *const mode_names[] = {"sync", "batch", "auto"};

int mode_parse(const char *name, enum job_mode *out)
{
	int v = 0;
	if (name_parse(mode_names, 3, name, &v) < 0)
		return -1;
	*out = (enum job_mode)v;
	return 0;
}

const char *mode_name(enum job_mode m)
{
	return (unsigned)m < 3 ? mode_names[m] : "?";
}

static const char *const effort_names[] = {"low", "medium", "high"};

int reasoning_effort_parse(const char *name, enum reasoning_effort *out)
{
	int v = 0;
	if (name_parse(effort_names, 3, name, &v) < 0)
		return -1;
	*out = (enum reasoning_effort)v;
	return 0;
}

const char *reasoning_effort_name(enum reasoning_effort e)
{
	return e >= EFFORT_LOW && e <= EFFORT_HIGH ? effort_names[e] : "none";
}

static const char *const period_names[] = {"none", "day", "month"};

int period_parse(const char *name, enum period *out)
{
	int v = 0;
	if (name_parse(period_names, 3, name, &v) < 0)
		return -1;
	*out = (enum period)v;
	return 0;
}

const char *period_name(enum period p)
{
	return (unsigned)p < 3 ? period_names[p] : "?";
}

int config_model_index(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_models; i++)
		if (strcmp(cfg->models[i].name, name) == 0)
			return (int)i;
	return -1;
}

int config_budget_index(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_budgets; i++)
		if (strcmp(cfg->budgets[i].name, name) == 0)
			return (int)i;
	return -1;
}

int config_provider_index(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_providers; i++)
		if (strcmp(cfg->providers[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* ---------------------------------------------------------------- errors and paths */

struct loader {
	const char *path; /* the file given to config_load() */
	int flags;        /* enum config_flags */
	char *errstr;
	size_t errstr_size;
	bool failed; /* errstr holds the first problem; later ones are dropped */
};

/* Appends the dotted path of s ("providers[0].type") to b; the root adds nothing. */
static void setting_path(const config_setting_t *s, struct buf *b)
{
	const config_setting_t *parent = config_setting_parent(s);

	if (!parent)
		return;
	setting_path(parent, b);
	if (config_setting_is_group(parent)) {
		if (b->len)
			buf_puts(b, ".");
		buf_puts(b, config_setting_name(s));
	} else {
		buf_printf(b, "[%d]", config_setting_index(s));
	}
}

/* The key of member name of g, or of g itself when name is NULL (new). */
static char *key_of(const config_setting_t *g, const char *name)
{
	struct buf b = {0};

	setting_path(g, &b);
	if (name) {
		if (b.len)
			buf_puts(&b, ".");
		buf_puts(&b, name);
	}
	return buf_take(&b);
}

/* The file a setting was read from: the main file or an @include'd one. */
static const char *setting_file(const struct loader *ld, const config_setting_t *s)
{
	const char *f = config_setting_source_file(s);
	return f ? f : ld->path;
}

/* Sections config_load() adds itself for an absent group have no line; 1 is
 * the least wrong place to point at. */
static int setting_line(const config_setting_t *s)
{
	int line = (int)config_setting_source_line(s);
	return line > 0 ? line : 1;
}

/* Records "FILE:LINE: KEY: problem" for member name of group g (or for g when
 * name is NULL) and returns -1. The line is the member's when it exists, else
 * g's: a missing key is reported where it should have been. fmt must never be
 * given a secret. */
static int fail(struct loader *ld, const config_setting_t *g, const char *name, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

static int fail(struct loader *ld, const config_setting_t *g, const char *name, const char *fmt,
                ...)
{
	const config_setting_t *at = g;
	struct buf b = {0};
	char *key = NULL;
	va_list ap;

	if (ld->failed)
		return -1;
	ld->failed = true;
	if (name && config_setting_is_group(g) && config_setting_get_member(g, name))
		at = config_setting_get_member(g, name);
	key = key_of(g, name);
	buf_printf(&b, "%s:%d: %s: ", setting_file(ld, at), setting_line(at), key);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (ld->errstr && ld->errstr_size)
		snprintf(ld->errstr, ld->errstr_size, "%s", b.data);
	buf_free(&b);
	free(key);
	return -1;
}

/* Logs a warning for every member of group g not named in known (NULL-ended). */
static void warn_unknown(const struct loader *ld, const config_setting_t *g,
                         const char *const *known)
{
	int n = config_setting_length(g);

	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);
		const char *const *k = known;
		char line[16], *key = NULL;

		while (*k && strcmp(*k, name) != 0)
			k++;
		if (*k)
			continue;
		key = key_of(m, NULL);
		snprintf(line, sizeof line, "%d", setting_line(m));
		log_warn("unknown configuration key", "file", setting_file(ld, m), "line", line,
		         "key", key, NULL);
		free(key);
	}
}

/* ---------------------------------------------------------------- typed values */

#define MS_MAX INT64_C(86400000) /* a day: the longest duration any _ms key takes */
#define MIB    (INT64_C(1) << 20)

/* Reads the integer member name of g into *out: def when absent, else it must
 * be an integer (never a float) in [min, max]. Returns 0 or -1. */
static int get_int64(struct loader *ld, const config_setting_t *g, const char *name, int64_t def,
                     int64_t min, int64_t max, int64_t *out)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	int type;

	if (!s) {
		*out = def;
		return 0;
	}
	type = config_setting_type(s);
	if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
		long long v = config_setting_get_int64(s);
		if (v >= min && v <= max) {
			*out = (int64_t)v;
			return 0;
		}
	}
	if (max == INT64_MAX)
		return fail(ld, g, name, "must be an integer >= %lld", (long long)min);
	return fail(ld, g, name, "must be an integer from %lld to %lld", (long long)min,
	            (long long)max);
}

/* A duration in milliseconds: a positive integer up to MS_MAX. */
static int get_ms(struct loader *ld, const config_setting_t *g, const char *name, int64_t def,
                  int64_t *out)
{
	return get_int64(ld, g, name, def, 1, MS_MAX, out);
}

/* get_int64() for int fields; min and max must fit an int. */
static int get_int(struct loader *ld, const config_setting_t *g, const char *name, int def, int min,
                   int max, int *out)
{
	int64_t v = 0;

	if (get_int64(ld, g, name, def, min, max, &v) < 0)
		return -1;
	*out = (int)v;
	return 0;
}

/* Is s a number (int or float)? Sets *v. */
static bool number_of(const config_setting_t *s, double *v)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: *v = (double)config_setting_get_int64(s); return true;
	case CONFIG_TYPE_FLOAT: *v = config_setting_get_float(s); return true;
	default: return false;
	}
}

/* Reads the number member name of g (an integer is accepted) into *out: def
 * when absent, else it must lie in [min, max]. */
static int get_double(struct loader *ld, const config_setting_t *g, const char *name, double def,
                      double min, double max, double *out)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	double v = 0;

	if (!s) {
		*out = def;
		return 0;
	}
	if (number_of(s, &v) && v >= min && v <= max) {
		*out = v;
		return 0;
	}
	return fail(ld, g, name, "must be a number from %g to %g", min, max);
}

/* Reads the USD amount member name of g as nano-USD into *out (rounded to the
 * nearest): def when absent; required when def is -2. */
#define USD_REQUIRED INT64_C(-2)
static int get_usd(struct loader *ld, const config_setting_t *g, const char *name, int64_t def,
                   int64_t *out)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	double v = 0;
	int64_t nusd = -1;

	if (!s) {
		if (def == USD_REQUIRED)
			return fail(ld, g, name, "is required (a number of USD)");
		*out = def;
		return 0;
	}
	if (number_of(s, &v))
		nusd = money_usd_to_nusd(v);
	if (nusd < 0)
		return fail(ld, g, name, "must be a number of USD from 0 to 9000000000");
	*out = nusd;
	return 0;
}

static int get_bool(struct loader *ld, const config_setting_t *g, const char *name, bool def,
                    bool *out)
{
	const config_setting_t *s = config_setting_get_member(g, name);

	if (!s) {
		*out = def;
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return fail(ld, g, name, "must be true or false");
	*out = config_setting_get_bool(s) != 0;
	return 0;
}

/* Sets *out to the string member name of g (borrowed from libconfig's tree),
 * or NULL when it is absent. Returns -1 if it is not a string. */
static int get_str(struct loader *ld, const config_setting_t *g, const char *name, const char **out)
{
	const config_setting_t *s = config_setting_get_member(g, name);

	*out = NULL;
	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(ld, g, name, "must be a string");
	*out = config_setting_get_string(s);
	return 0;
}

/* Copies the string member name of g into *out (new): def when absent, and an
 * error "is required" when def is NULL. */
static int dup_str(struct loader *ld, const config_setting_t *g, const char *name, const char *def,
                   char **out)
{
	const char *v = NULL;

	if (get_str(ld, g, name, &v) < 0)
		return -1;
	if (!v && !def)
		return fail(ld, g, name, "is required");
	*out = xstrdup(v ? v : def);
	return 0;
}

/* dup_str() where "" is an error too. */
static int dup_nonempty(struct loader *ld, const config_setting_t *g, const char *name,
                        const char *def, char **out)
{
	if (dup_str(ld, g, name, def, out) < 0)
		return -1;
	if (!**out)
		return fail(ld, g, name, "must not be empty");
	return 0;
}

/* Sets *out to the list or array member name of g whose elements are all
 * strings, or NULL when it is absent. */
static int get_str_list(struct loader *ld, const config_setting_t *g, const char *name,
                        const config_setting_t **out)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	int n;

	*out = NULL;
	if (!s)
		return 0;
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return fail(ld, g, name, "must be a list of strings: [\"a\", \"b\"]");
	n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return fail(ld, e, NULL, "must be a string");
	}
	*out = s;
	return 0;
}

/* Does s name an environment variable ([A-Za-z_][A-Za-z0-9_]*)? Checked so that
 * a key pasted into api_key_env by mistake is refused without being echoed. */
static bool is_env_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* Reads the environment variable env into *secret (new; NULL when unset or
 * empty). A value pasted with a trailing newline or blanks (a common mistake
 * with Kubernetes Secrets) is trimmed, with a warning naming the variable;
 * any other control character is refused, naming the variable and never the
 * value, since it would end up in a request head. Returns 0, or -1 with the
 * problem in why. */
static int env_secret(const char *env, char **secret, const char **why)
{
	const char *v = getenv(env);
	size_t len = v ? strlen(v) : 0;

	*secret = NULL;
	while (len > 0 && (v[len - 1] == '\n' || v[len - 1] == '\r' || v[len - 1] == ' ' ||
	                   v[len - 1] == '\t'))
		len--;
	if (!len) {
		*why = v ? "is empty" : "is not set";
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c == 0x7f) {
			*why = "holds a control character (only trailing newlines and blanks are "
			       "trimmed)";
			return -1;
		}
	}
	if (v[len])
		log_warn("trailing whitespace trimmed from a secret", "variable", env, NULL);
	*secret = xstrndup(v, len);
	return 0;
}

/* Reads the *_env member name of g into *env (new, "" when absent) and the
 * variable it names into *secret (new, NULL when unset or empty). When the
 * variable is missing and required, fails naming the variable, never a value;
 * when it is missing and not required, *missing (if given) gets its name. */
static int get_secret(struct loader *ld, const config_setting_t *g, const char *name, bool required,
                      char **env, char **secret, char **missing)
{
	const char *why = NULL;

	if (dup_str(ld, g, name, "", env) < 0)
		return -1;
	if (!**env)
		return 0;
	if (!is_env_name(*env))
		return fail(ld, g, name,
		            "must name an environment variable (letters, digits and _), "
		            "not hold the secret itself");
	if (env_secret(*env, secret, &why) < 0)
		return fail(ld, g, name, "environment variable %s %s", *env, why);
	if (*secret)
		return 0;
	if (required)
		return fail(ld, g, name, "environment variable %s %s", *env, why);
	if (missing && !*missing)
		*missing = xstrdup(*env);
	return 0;
}

/* A secret written into the file itself is refused outright. */
static int refuse_secret(struct loader *ld, const config_setting_t *g, const char *name,
                         const char *instead)
{
	if (config_setting_get_member(g, name))
		return fail(ld, g, name,
		            "secrets are never written in the file: set %s to the name of an "
		            "environment variable instead",
		            instead);
	return 0;
}

/* Is s "" or "host:port" (an IPv6 host in brackets)? */
static bool is_listen_addr(const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end = NULL;
	long port;

	if (!*s)
		return true;
	if (!colon || colon == s || colon[1] < '0' || colon[1] > '9')
		return false;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || port < 1 || port > 65535)
		return false;
	if (memchr(s, ':', (size_t)(colon - s)))
		return s[0] == '[' && colon[-1] == ']' && colon - s > 2;
	return true;
}

/* ---------------------------------------------------------------- sections */

/* Sets *out to the group called name under root. An absent section is added
 * empty, so every key takes its default through the same code. */
static int section(struct loader *ld, config_setting_t *root, const char *name,
                   const config_setting_t **out)
{
	config_setting_t *s = config_setting_get_member(root, name);

	if (!s)
		s = config_setting_add(root, name, CONFIG_TYPE_GROUP);
	if (!s || !config_setting_is_group(s))
		return fail(ld, root, name, "must be a group: %s = { ... };", name);
	*out = s;
	return 0;
}

/* Sets *out to the list of groups called name under root (NULL when absent,
 * *n = 0). Every element must be a group. */
static int group_list(struct loader *ld, const config_setting_t *root, const char *name,
                      const config_setting_t **out, size_t *n)
{
	const config_setting_t *s = config_setting_get_member(root, name);
	int len;

	*out = NULL;
	*n = 0;
	if (!s)
		return 0;
	len = config_setting_length(s);
	/* libconfig reads "[]" as an empty array: accept it as an empty list. */
	if (!config_setting_is_list(s) && !(config_setting_is_array(s) && len == 0))
		return fail(ld, root, name, "must be a list of groups: %s = ( { ... }, { ... } );",
		            name);
	for (int i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (!config_setting_is_group(e))
			return fail(ld, e, NULL, "must be a group: { name = \"...\"; ... }");
	}
	*out = s;
	*n = (size_t)len;
	return 0;
}

static int load_kafka(struct loader *ld, const config_setting_t *g, struct config *cfg)
{
	static const char *const known[] = {"brokers",       "group",       "input_topics",
	                                    "results_topic", "costs_topic", "dlq_topic",
	                                    "properties",    NULL};
	const config_setting_t *topics = NULL, *props = NULL;
	size_t n;

	warn_unknown(ld, g, known);
	if (dup_nonempty(ld, g, "brokers", "127.0.0.1:9092", &cfg->kafka.brokers) < 0 ||
	    dup_nonempty(ld, g, "group", "promptyard", &cfg->kafka.group) < 0 ||
	    dup_nonempty(ld, g, "results_topic", "llm.results", &cfg->kafka.results_topic) < 0 ||
	    dup_nonempty(ld, g, "costs_topic", "llm.costs", &cfg->kafka.costs_topic) < 0 ||
	    dup_nonempty(ld, g, "dlq_topic", "llm.dlq", &cfg->kafka.dlq_topic) < 0 ||
	    get_str_list(ld, g, "input_topics", &topics) < 0 ||
	    get_str_list(ld, g, "properties", &props) < 0)
		return -1;

	if (!topics) {
		cfg->kafka.input_topics = xcalloc(1, sizeof(char *));
		cfg->kafka.input_topics[0] = xstrdup("llm.jobs");
		cfg->kafka.n_input_topics = 1;
	} else {
		n = (size_t)config_setting_length(topics);
		if (n == 0)
			return fail(ld, g, "input_topics", "must name at least one topic");
		cfg->kafka.input_topics = xcalloc(n, sizeof(char *));
		cfg->kafka.n_input_topics = n;
		for (size_t i = 0; i < n; i++) {
			const char *t = config_setting_get_string_elem(topics, (int)i);
			if (!*t)
				return fail(ld, config_setting_get_elem(topics, (unsigned)i), NULL,
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
			return fail(ld, config_setting_get_elem(props, (unsigned)i), NULL,
			            "must be \"key=value\" (a librdkafka property)");
		cfg->kafka.property_keys[i] = xstrndup(p, (size_t)(eq - p));
		cfg->kafka.property_values[i] = xstrdup(eq + 1);
	}
	return 0;
}

/* Is s "host:port" with a port from 1 to 65535 (an IPv6 host in brackets)? */
static bool is_host_port(const char *s)
{
	return *s && is_listen_addr(s);
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

	warn_unknown(ld, g, known);
	if (refuse_secret(ld, g, "password", "password_env") < 0 ||
	    dup_nonempty(ld, g, "host", "127.0.0.1", &cfg->redis.host) < 0 ||
	    get_int(ld, g, "port", 6379, 1, 65535, &cfg->redis.port) < 0 ||
	    get_int(ld, g, "db", 0, 0, 1000000, &cfg->redis.db) < 0 ||
	    dup_str(ld, g, "key_prefix", "promptyard:", &cfg->redis.key_prefix) < 0 ||
	    get_ms(ld, g, "timeout_ms", 1000, &cfg->redis.timeout_ms) < 0 ||
	    get_str(ld, g, "username", &username) < 0 ||
	    get_str_list(ld, g, "sentinels", &sentinels) < 0 ||
	    get_str(ld, g, "sentinel_master", &master) < 0 ||
	    get_int(ld, g, "min_replicas_acked", 1, 0, 100, &cfg->redis.min_replicas_acked) < 0)
		return -1;
	if (username && *username)
		cfg->redis.username = xstrdup(username);
	size_t n = sentinels ? (size_t)config_setting_length(sentinels) : 0;
	cfg->redis.sentinels = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		const char *hp = config_setting_get_string_elem(sentinels, (int)i);
		if (!is_host_port(hp))
			return fail(ld, config_setting_get_elem(sentinels, (unsigned)i), NULL,
			            "must be \"host:port\"");
		cfg->redis.sentinels[cfg->redis.n_sentinels++] = xstrdup(hp);
	}
	if (n && (!master || !*master))
		return fail(ld, g, "sentinel_master",
		            "is required with sentinels (the name the sentinels monitor)");
	if (master && *master && !n)
		return fail(ld, g, "sentinels", "are required with sentinel_master");
	if (n)
		cfg->redis.sentinel_master = xstrdup(master);
	/* A password the operator asked for but did not provide is always an
	 * error: unlike a provider key, nothing works without Redis. */
	return get_secret(ld, g, "password_env", true, &cfg->redis.password_env,
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

	warn_unknown(ld, g, known);
	if (get_int(ld, g, "max_in_flight", 1000, 1, 100000, &cfg->worker.max_in_flight) < 0 ||
	    get_int(ld, g, "max_attempts", 4, 1, 20, &cfg->worker.max_attempts) < 0 ||
	    get_int(ld, g, "retry_same", 0, 0, 10, &cfg->worker.retry_same) < 0)
		return -1;
	if (get_int64(ld, g, "max_retry_after_ms", 30000, 0, MS_MAX,
	              &cfg->worker.max_retry_after_ms) < 0 ||
	    get_ms(ld, g, "drain_timeout_ms", 30000, &cfg->worker.drain_timeout_ms) < 0 ||
	    get_int64(ld, g, "max_job_bytes", MIB, 1, 64 * MIB, &cfg->worker.max_job_bytes) < 0 ||
	    get_int64(ld, g, "dedupe_ttl_s", 172800, 1, 31536000, &cfg->worker.dedupe_ttl_s) < 0 ||
	    get_int64(ld, g, "max_response_bytes", 8 * MIB, 1, 1024 * MIB,
	              &cfg->worker.max_response_bytes) < 0 ||
	    get_int64(ld, g, "max_fetch_bytes", 20 * MIB, 1, 1024 * MIB,
	              &cfg->worker.max_fetch_bytes) < 0)
		return -1;
	if (dup_nonempty(ld, g, "default_budget", "default", &cfg->worker.default_budget) < 0 ||
	    dup_str(ld, g, "metrics_listen", "127.0.0.1:9464", &cfg->worker.metrics_listen) < 0 ||
	    dup_nonempty(ld, g, "log_level", "info", &cfg->worker.log_level) < 0)
		return -1;

	if (get_str(ld, g, "default_strategy", &v) < 0)
		return -1;
	cfg->worker.default_strategy = STRATEGY_BALANCED;
	if (v && strategy_parse(v, &cfg->worker.default_strategy) < 0)
		return fail(ld, g, "default_strategy",
		            "must be one of cheapest, balanced, fastest, reliable, auto");

	if (get_str(ld, g, "default_mode", &v) < 0)
		return -1;
	cfg->worker.default_mode = MODE_SYNC;
	if (v && mode_parse(v, &cfg->worker.default_mode) < 0)
		return fail(ld, g, "default_mode", "must be one of sync, batch, auto");

	if (get_str(ld, g, "on_budget_exhausted", &v) < 0)
		return -1;
	cfg->worker.on_budget_exhausted = ON_EXHAUSTED_FAIL;
	if (v && strcmp(v, "pause") == 0)
		cfg->worker.on_budget_exhausted = ON_EXHAUSTED_PAUSE;
	else if (v && strcmp(v, "fail") != 0)
		return fail(ld, g, "on_budget_exhausted", "must be \"fail\" or \"pause\"");

	if (!is_listen_addr(cfg->worker.metrics_listen))
		return fail(ld, g, "metrics_listen",
		            "must be \"\" (no HTTP endpoint) or \"host:port\"");
	if (log_level_parse(cfg->worker.log_level, &level) < 0)
		return fail(ld, g, "log_level", "must be one of debug, info, warn, error, off");

	if (get_str(ld, g, "fetch_ca_file", &v) < 0)
		return -1;
	if (v && *v && access(v, R_OK) != 0)
		return fail(ld, g, "fetch_ca_file", "cannot read %s: %s", v, strerror(errno));
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

	warn_unknown(ld, g, known);
	if (get_double(ld, g, "balanced_slack", 0.10, 0, 1, &cfg->router.balanced_slack) < 0 ||
	    get_int64(ld, g, "window_s", 300, 1, 604800, &cfg->router.window_s) < 0 ||
	    get_int(ld, g, "breaker_failures", 5, 1, 1000000, &cfg->router.breaker_failures) < 0 ||
	    get_ms(ld, g, "breaker_cooldown_ms", 30000, &cfg->router.breaker_cooldown_ms) < 0 ||
	    get_double(ld, g, "auto_floor", 0.3, 0, 1, &cfg->router.auto_floor) < 0 ||
	    dup_str(ld, g, "classifier_model", "", &cfg->router.classifier_model) < 0)
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

	warn_unknown(ld, g, known);
	if (get_int(ld, g, "max_requests", 10000, 1, 100000, &cfg->batch.max_requests) < 0 ||
	    get_ms(ld, g, "max_wait_ms", 60000, &cfg->batch.max_wait_ms) < 0 ||
	    get_int64(ld, g, "poll_interval_s", 60, 1, 86400, &cfg->batch.poll_interval_s) < 0 ||
	    get_int64(ld, g, "min_lead_s", 3600, 1, year_s, &cfg->batch.min_lead_s) < 0 ||
	    get_int64(ld, g, "fallback_lead_s", 1800, 0, year_s, &cfg->batch.fallback_lead_s) < 0 ||
	    get_int64(ld, g, "default_window_s", 86400, 1, year_s, &cfg->batch.default_window_s) <
	            0)
		return -1;
	/* A job is batched only when complete_by is min_lead_s away, and its batch
	 * is given up fallback_lead_s before it: the second must be shorter, or
	 * a batch would be canceled as soon as it is sent. */
	if (cfg->batch.fallback_lead_s >= cfg->batch.min_lead_s)
		return fail(ld, g, "fallback_lead_s", "must be less than min_lead_s (%lld)",
		            (long long)cfg->batch.min_lead_s);
	return 0;
}

/* Is c a character of an HTTP field name (RFC 9110 token)? */
static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s, size_t len)
{
	if (!len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_tchar(s[i]))
			return false;
	return true;
}

/* Reads headers = ["Name: value", ...] of provider g into p->headers, every
 * ${NAME} replaced by that environment variable (a secret: the line is wiped
 * when freed). A variable that is missing fails when required, else is noted
 * in p->missing_env. Errors name the element and the variable, never a value. */
static int load_headers(struct loader *ld, const config_setting_t *g, struct provider_conf *p,
                        bool required)
{
	const config_setting_t *list = NULL;
	struct buf line = {0};
	int rc = -1;

	if (get_str_list(ld, g, "headers", &list) < 0 || !list)
		return list ? -1 : 0;
	size_t n = (size_t)config_setting_length(list);
	p->headers = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *h = config_setting_get_string(e);
		const char *colon = strchr(h, ':');
		bool missing = false;

		if (!colon || !is_token(h, (size_t)(colon - h))) {
			fail(ld, e, NULL,
			     "must be \"Name: value\" with a header name before the colon");
			goto out;
		}
		buf_reset(&line);
		buf_append(&line, h, (size_t)(colon - h));
		buf_puts(&line, ": ");
		const char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		while (*v) {
			const char *ref = strstr(v, "${");
			const char *end = ref ? strchr(ref + 2, '}') : NULL;
			if (!ref || !end) {
				buf_puts(&line, v);
				break;
			}
			buf_append(&line, v, (size_t)(ref - v));
			char *env = xstrndup(ref + 2, (size_t)(end - ref - 2));
			char *secret = NULL;
			const char *why = NULL;
			if (!is_env_name(env)) {
				fail(ld, e, NULL, "${%s}: must name an environment variable", env);
				free(env);
				goto out;
			}
			if (env_secret(env, &secret, &why) < 0 || (!secret && required)) {
				fail(ld, e, NULL, "environment variable %s %s", env, why);
				free(env);
				goto out;
			}
			if (secret) {
				buf_puts(&line, secret);
				explicit_bzero(secret, strlen(secret));
				free(secret);
			} else {
				missing = true;
				if (!p->missing_env)
					p->missing_env = xstrdup(env);
			}
			free(env);
			v = end + 1;
		}
		for (size_t k = 0; k < line.len; k++) {
			unsigned char c = (unsigned char)line.data[k];
			if ((c < 0x20 && c != '\t') || c == 0x7f) {
				fail(ld, e, NULL, "must not hold control characters");
				goto out;
			}
		}
		if (missing)
			continue; /* the provider is unusable anyway (missing_env) */
		p->headers[p->n_headers++] = xstrndup(line.data, line.len);
	}
	rc = 0;
out:
	if (line.data)
		explicit_bzero(line.data, line.len);
	buf_free(&line);
	return rc;
}

/* Reads query = ["k=v", ...] into p->query ("k=v&k2=v2"), written as it is
 * to go into a URL. */
static int load_query(struct loader *ld, const config_setting_t *g, struct provider_conf *p)
{
	const config_setting_t *list = NULL;
	struct buf q = {0};

	if (get_str_list(ld, g, "query", &list) < 0)
		return -1;
	for (int i = 0; list && i < config_setting_length(list); i++) {
		const char *kv = config_setting_get_string_elem(list, i);
		if (!*kv || *kv == '=' || strpbrk(kv, " #?\t\r\n")) {
			buf_free(&q);
			return fail(ld, config_setting_get_elem(list, (unsigned)i), NULL,
			            "must be \"name=value\" as it goes into a URL (no blanks, '#' "
			            "or '?')");
		}
		if (q.len)
			buf_puts(&q, "&");
		buf_puts(&q, kv);
	}
	p->query = q.len ? buf_take(&q) : NULL;
	buf_free(&q);
	return 0;
}

/* Reads an AWS credential from its fixed environment variable (bedrock). */
static int aws_secret(struct loader *ld, const config_setting_t *g, struct provider_conf *p,
                      const char *env, bool required, char **out)
{
	const char *why = NULL;

	if (env_secret(env, out, &why) < 0)
		return fail(ld, g, "type", "environment variable %s %s", env, why);
	if (*out || !required)
		return 0;
	if (ld->flags & CONFIG_REQUIRE_KEYS && !p->optional)
		return fail(ld, g, "type",
		            "bedrock signs its calls with AWS credentials: "
		            "environment variable %s %s",
		            env, why);
	if (!p->missing_env)
		p->missing_env = xstrdup(env);
	return 0;
}

static int load_provider(struct loader *ld, const config_setting_t *g, struct config *cfg, size_t i)
{
	static const char *const known[] = {"name",        "type",       "base_url",
	                                    "api_key_env", "timeout_ms", "max_connections",
	                                    "rpm",         "tpm",        "optional",
	                                    "api_key",     "batch",      "headers",
	                                    "auth_header", "ca_file",    "query",
	                                    "region",      NULL}; /* api_key: to refuse it */
	struct provider_conf *p = &cfg->providers[i];
	const char *auth = NULL, *ca = NULL, *region = NULL;
	size_t len;

	warn_unknown(ld, g, known);
	p->line = setting_line(g);
	if (dup_nonempty(ld, g, "name", NULL, &p->name) < 0)
		return -1;
	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->providers[j].name, p->name) == 0)
			return fail(ld, g, "name",
			            "duplicate provider name \"%s\" (first at line %d)", p->name,
			            cfg->providers[j].line);
	if (dup_nonempty(ld, g, "type", NULL, &p->type) < 0)
		return -1;
	p->ops = provider_lookup(p->type);
	if (!p->ops)
		return fail(ld, g, "type", "unknown provider type \"%s\"", p->type);
	bool bedrock = strcmp(p->type, "bedrock") == 0;
	if (dup_nonempty(ld, g, "base_url", NULL, &p->base_url) < 0)
		return -1;
	if (strncmp(p->base_url, "http://", 7) != 0 && strncmp(p->base_url, "https://", 8) != 0)
		return fail(ld, g, "base_url", "must be an http:// or https:// URL");
	len = strlen(p->base_url);
	while (len > 0 && p->base_url[len - 1] == '/')
		p->base_url[--len] = '\0';
	if (get_bool(ld, g, "optional", false, &p->optional) < 0 ||
	    get_ms(ld, g, "timeout_ms", 120000, &p->timeout_ms) < 0 ||
	    get_int(ld, g, "max_connections", 64, 1, 100000, &p->max_connections) < 0 ||
	    get_int64(ld, g, "rpm", 0, 0, INT64_C(1000000000000), &p->rpm) < 0 ||
	    get_int64(ld, g, "tpm", 0, 0, INT64_C(1000000000000), &p->tpm) < 0 ||
	    get_bool(ld, g, "batch", false, &p->batch) < 0 ||
	    refuse_secret(ld, g, "api_key", "api_key_env") < 0 ||
	    get_str(ld, g, "auth_header", &auth) < 0 || get_str(ld, g, "ca_file", &ca) < 0 ||
	    get_str(ld, g, "region", &region) < 0 || load_query(ld, g, p) < 0)
		return -1;
	if (p->batch && bedrock)
		return fail(ld, g, "batch", "is not supported for type bedrock");
	if (auth && !is_token(auth, strlen(auth)))
		return fail(ld, g, "auth_header", "must be a header name, e.g. \"api-key\"");
	if (auth)
		p->auth_header = xstrdup(auth);
	if (ca && access(ca, R_OK) != 0)
		return fail(ld, g, "ca_file", "cannot read %s: %s", ca, strerror(errno));
	if (ca)
		p->ca_file = xstrdup(ca);
	if (region &&
	    (!*region || strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region)))
		return fail(ld, g, "region", "must be an AWS region name, e.g. \"us-east-1\"");
	if (bedrock && !region)
		return fail(ld, g, "region", "is required for type bedrock");
	if (region)
		p->region = xstrdup(region);
	bool required = (ld->flags & CONFIG_REQUIRE_KEYS) && !p->optional;
	if (get_secret(ld, g, "api_key_env", required, &p->api_key_env, &p->api_key,
	               &p->missing_env) < 0 ||
	    load_headers(ld, g, p, required) < 0)
		return -1;
	/* Bedrock with no api_key_env signs with the AWS keys (SigV4). */
	if (bedrock && !p->api_key_env[0] &&
	    (aws_secret(ld, g, p, "AWS_ACCESS_KEY_ID", true, &p->aws_access_key_id) < 0 ||
	     aws_secret(ld, g, p, "AWS_SECRET_ACCESS_KEY", true, &p->aws_secret_access_key) < 0 ||
	     aws_secret(ld, g, p, "AWS_SESSION_TOKEN", false, &p->aws_session_token) < 0))
		return -1;
	return 0;
}

static int load_model(struct loader *ld, const config_setting_t *g, struct config *cfg, size_t i)
{
	static const char *const known[] = {"name",
	                                    "provider",
	                                    "id",
	                                    "input_usd_per_mtok",
	                                    "cached_input_usd_per_mtok",
	                                    "cache_write_usd_per_mtok",
	                                    "output_usd_per_mtok",
	                                    "context_tokens",
	                                    "default_max_tokens",
	                                    "quality",
	                                    "latency_ms",
	                                    "capabilities",
	                                    "max_completion_tokens",
	                                    "structured_outputs",
	                                    "max_output_tokens",
	                                    "image_tokens",
	                                    "pdf_page_tokens",
	                                    "thinking_budget_low",
	                                    "thinking_budget_medium",
	                                    "thinking_budget_high",
	                                    "batch_input_usd_per_mtok",
	                                    "batch_cached_input_usd_per_mtok",
	                                    "batch_output_usd_per_mtok",
	                                    NULL};
	struct model_conf *m = &cfg->models[i];
	struct price *bp = &m->batch_price;
	struct price *pr = &m->price;
	const config_setting_t *caps = NULL;
	const char *provider = NULL;

	warn_unknown(ld, g, known);
	m->line = setting_line(g);
	m->provider = -1;
	if (dup_nonempty(ld, g, "name", NULL, &m->name) < 0)
		return -1;
	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->models[j].name, m->name) == 0)
			return fail(ld, g, "name", "duplicate model name \"%s\" (first at line %d)",
			            m->name, cfg->models[j].line);
	if (get_str(ld, g, "provider", &provider) < 0)
		return -1;
	if (!provider)
		return fail(ld, g, "provider", "is required");
	m->provider = config_provider_index(cfg, provider);
	if (m->provider < 0)
		return fail(ld, g, "provider", "no provider named \"%s\"", provider);
	if (dup_nonempty(ld, g, "id", m->name, &m->id) < 0 ||
	    get_usd(ld, g, "input_usd_per_mtok", 0, &pr->input_nusd_per_mtok) < 0 ||
	    get_usd(ld, g, "cached_input_usd_per_mtok", pr->input_nusd_per_mtok,
	            &pr->cached_input_nusd_per_mtok) < 0 ||
	    get_usd(ld, g, "cache_write_usd_per_mtok", -1, &pr->cache_write_nusd_per_mtok) < 0 ||
	    get_usd(ld, g, "output_usd_per_mtok", 0, &pr->output_nusd_per_mtok) < 0 ||
	    get_int64(ld, g, "context_tokens", 128000, 1, 100000000, &m->context_tokens) < 0 ||
	    get_int64(ld, g, "default_max_tokens", 1024, 1, 1000000, &m->default_max_tokens) < 0 ||
	    get_double(ld, g, "quality", 0.5, 0, 1, &m->quality) < 0 ||
	    get_int64(ld, g, "latency_ms", 1000, 0, MS_MAX, &m->latency_ms) < 0 ||
	    get_bool(ld, g, "max_completion_tokens", false, &m->max_completion_tokens) < 0 ||
	    get_bool(ld, g, "structured_outputs", false, &m->structured_outputs) < 0 ||
	    get_str_list(ld, g, "capabilities", &caps) < 0 ||
	    get_int64(ld, g, "max_output_tokens", 0, 0, 100000000, &m->max_output_tokens) < 0 ||
	    get_int64(ld, g, "image_tokens", 1600, 0, 1000000, &m->image_tokens) < 0 ||
	    get_int64(ld, g, "pdf_page_tokens", 3000, 0, 1000000, &m->pdf_page_tokens) < 0 ||
	    get_int64(ld, g, "thinking_budget_low", 1024, 1, 10000000,
	              &m->thinking_budget[EFFORT_LOW]) < 0 ||
	    get_int64(ld, g, "thinking_budget_medium", 8192, 1, 10000000,
	              &m->thinking_budget[EFFORT_MEDIUM]) < 0 ||
	    get_int64(ld, g, "thinking_budget_high", 24576, 1, 10000000,
	              &m->thinking_budget[EFFORT_HIGH]) < 0)
		return -1;
	for (int k = 0; caps && k < config_setting_length(caps); k++) {
		const char *name = config_setting_get_string_elem(caps, k);
		unsigned bit = 0;
		if (capability_parse(name, &bit) < 0)
			return fail(ld, config_setting_get_elem(caps, (unsigned)k), NULL,
			            "unknown capability \"%s\" (json, json_schema, tools, vision, "
			            "pdf, reasoning, long_context)",
			            name);
		m->caps |= bit;
	}
	if (m->max_output_tokens && m->default_max_tokens > m->max_output_tokens)
		return fail(ld, g, "default_max_tokens", "must not exceed max_output_tokens (%lld)",
		            (long long)m->max_output_tokens);
	/* Batch prices (SPEC §14): half the sync price, rounded up so that an
	 * estimate never falls short, unless the model says otherwise. */
	m->has_batch_price = cfg->providers[m->provider].batch;
	if (get_usd(ld, g, "batch_input_usd_per_mtok", (pr->input_nusd_per_mtok + 1) / 2,
	            &bp->input_nusd_per_mtok) < 0 ||
	    get_usd(ld, g, "batch_cached_input_usd_per_mtok",
	            (pr->cached_input_nusd_per_mtok + 1) / 2,
	            &bp->cached_input_nusd_per_mtok) < 0 ||
	    get_usd(ld, g, "batch_output_usd_per_mtok", (pr->output_nusd_per_mtok + 1) / 2,
	            &bp->output_nusd_per_mtok) < 0)
		return -1;
	bp->cache_write_nusd_per_mtok =
	        pr->cache_write_nusd_per_mtok < 0 ? -1 : (pr->cache_write_nusd_per_mtok + 1) / 2;
	return 0;
}

static int load_budget(struct loader *ld, const config_setting_t *g, struct config *cfg, size_t i)
{
	static const char *const known[] = {"name", "limit_usd", "period", "parent", NULL};
	struct budget_conf *b = &cfg->budgets[i];
	const char *period = NULL;

	warn_unknown(ld, g, known);
	b->line = setting_line(g);
	b->parent = -1;
	if (dup_nonempty(ld, g, "name", NULL, &b->name) < 0)
		return -1;
	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->budgets[j].name, b->name) == 0)
			return fail(ld, g, "name",
			            "duplicate budget name \"%s\" (first at line %d)", b->name,
			            cfg->budgets[j].line);
	if (get_usd(ld, g, "limit_usd", USD_REQUIRED, &b->limit_nusd) < 0 ||
	    get_str(ld, g, "period", &period) < 0)
		return -1;
	if (b->limit_nusd > MONEY_MAX_NUSD) {
		char max[32];
		money_format_usd(MONEY_MAX_NUSD, max, sizeof max);
		return fail(ld, g, "limit_usd",
		            "must be at most %s USD (2^53 - 1 nano-USD, the most the ledger's "
		            "scripts compare exactly)",
		            max);
	}
	if (period && period_parse(period, &b->period) < 0)
		return fail(ld, g, "period", "must be one of none, day, month");
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

		if (get_str(ld, g, "parent", &parent) < 0)
			goto out;
		if (!parent || !*parent)
			continue;
		cfg->budgets[i].parent = config_budget_index(cfg, parent);
		if (cfg->budgets[i].parent < 0) {
			fail(ld, g, "parent", "no budget named \"%s\"", parent);
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
			fail(ld, config_setting_get_elem(list, (unsigned)i), "parent",
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
		return fail(ld, g, "metadata", "must be a group: metadata = { key = \"value\"; };");
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
				return fail(ld, e, NULL, "must be valid UTF-8");
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
			return fail(ld, e, NULL, "must be a string, a number or a boolean");
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

	warn_unknown(ld, g, known);
	r->line = setting_line(g);
	r->strategy = -1;
	if (dup_nonempty(ld, g, "name", NULL, &r->name) < 0)
		return -1;
	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->rules[j].name, r->name) == 0)
			return fail(ld, g, "name", "duplicate rule name \"%s\" (first at line %d)",
			            r->name, cfg->rules[j].line);
	if (get_str(ld, g, "match", &match) < 0 ||
	    get_bool(ld, g, "ignore_case", false, &r->ignore_case) < 0 ||
	    load_rule_metadata(ld, g, &r->metadata) < 0)
		return -1;
	if (match && !*match)
		return fail(ld, g, "match",
		            "must not be empty (leave it out to match on metadata only)");
	if (!match && (!r->metadata || json_object_size(r->metadata) == 0))
		return fail(ld, g, NULL, "needs match or metadata (or both)");

	/* r->match is set only once r->re is compiled: config_free() relies on it. */
	if (match) {
		rc = regcomp(&r->re, match,
		             REG_EXTENDED | REG_NOSUB | (r->ignore_case ? REG_ICASE : 0));
		if (rc != 0) {
			char msg[256];
			regerror(rc, &r->re, msg, sizeof msg);
			return fail(ld, g, "match", "bad regular expression: %s", msg);
		}
		r->match = xstrdup(match);
	}

	if (get_str_list(ld, g, "models", &models) < 0)
		return -1;
	if (models) {
		r->n_models = (size_t)config_setting_length(models);
		if (r->n_models == 0)
			return fail(ld, g, "models",
			            "must name at least one model (leave it out to keep them all)");
		r->models = xcalloc(r->n_models, sizeof(int));
		for (size_t k = 0; k < r->n_models; k++) {
			const char *name = config_setting_get_string_elem(models, (int)k);
			r->models[k] = config_model_index(cfg, name);
			if (r->models[k] < 0)
				return fail(ld, config_setting_get_elem(models, (unsigned)k), NULL,
				            "no model named \"%s\"", name);
		}
	}

	if (get_str(ld, g, "strategy", &strategy) < 0)
		return -1;
	if (strategy) {
		if (strategy_parse(strategy, &st) < 0)
			return fail(ld, g, "strategy",
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
		return fail(ld, worker, "default_budget", "no budget named \"%s\"",
		            cfg->worker.default_budget);
	if (*cfg->router.classifier_model &&
	    config_model_index(cfg, cfg->router.classifier_model) < 0)
		return fail(ld, router, "classifier_model", "no model named \"%s\"",
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
	warn_unknown(&ld, root, known);
	if (section(&ld, root, "kafka", &kafka) < 0 || section(&ld, root, "redis", &redis) < 0 ||
	    section(&ld, root, "worker", &worker) < 0 ||
	    section(&ld, root, "router", &router) < 0 || section(&ld, root, "batch", &batch) < 0 ||
	    group_list(&ld, root, "providers", &providers, &cfg->n_providers) < 0 ||
	    group_list(&ld, root, "models", &models, &cfg->n_models) < 0 ||
	    group_list(&ld, root, "budgets", &budgets, &cfg->n_budgets) < 0 ||
	    group_list(&ld, root, "rules", &rules, &cfg->n_rules) < 0)
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
	    load_list(&ld, providers, cfg->n_providers, cfg, load_provider) < 0 ||
	    load_list(&ld, models, cfg->n_models, cfg, load_model) < 0 ||
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
	return 0;
}
