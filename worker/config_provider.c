/* config_provider: the providers and models sections (SPEC §8, §13-§16):
 * a provider's type, URL, key and what SPEC §15 adds (headers with
 * ${NAME} secrets, auth_header, query, ca_file, region and the AWS keys of
 * bedrock); a model's prices (sync and batch), limits and capabilities. */
#include "config_int.h"

#include "buf.h"
#include "log.h"
#include "provider_registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

	if (config_read_str_list(ld, g, "headers", &list) < 0 || !list)
		return list ? -1 : 0;
	size_t n = (size_t)config_setting_length(list);
	p->headers = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *h = config_setting_get_string(e);
		const char *colon = strchr(h, ':');
		bool missing = false;

		if (!colon || !is_token(h, (size_t)(colon - h))) {
			config_read_fail(
			        ld, e, NULL,
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
			if (!config_read_is_env_name(env)) {
				config_read_fail(ld, e, NULL,
				                 "${%s}: must name an environment variable", env);
				free(env);
				goto out;
			}
			if (config_read_env_secret(env, &secret, &why) < 0 ||
			    (!secret && required)) {
				config_read_fail(ld, e, NULL, "environment variable %s %s", env,
				                 why);
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
				config_read_fail(ld, e, NULL, "must not hold control characters");
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

	if (config_read_str_list(ld, g, "query", &list) < 0)
		return -1;
	for (int i = 0; list && i < config_setting_length(list); i++) {
		const char *kv = config_setting_get_string_elem(list, i);
		if (!*kv || *kv == '=' || strpbrk(kv, " #?\t\r\n")) {
			buf_free(&q);
			return config_read_fail(
			        ld, config_setting_get_elem(list, (unsigned)i), NULL,
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

	if (config_read_env_secret(env, out, &why) < 0)
		return config_read_fail(ld, g, "type", "environment variable %s %s", env, why);
	if (*out || !required)
		return 0;
	if (ld->flags & CONFIG_REQUIRE_KEYS && !p->optional)
		return config_read_fail(ld, g, "type",
		                        "bedrock signs its calls with AWS credentials: "
		                        "environment variable %s %s",
		                        env, why);
	if (!p->missing_env)
		p->missing_env = xstrdup(env);
	return 0;
}

int config_load_provider(struct loader *ld, const config_setting_t *g, struct config *cfg, size_t i)
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

	config_read_warn_unknown(ld, g, known);
	p->line = config_read_line(g);
	if (config_read_dup_nonempty(ld, g, "name", NULL, &p->name) < 0)
		return -1;
	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->providers[j].name, p->name) == 0)
			return config_read_fail(ld, g, "name",
			                        "duplicate provider name \"%s\" (first at line %d)",
			                        p->name, cfg->providers[j].line);
	if (config_read_dup_nonempty(ld, g, "type", NULL, &p->type) < 0)
		return -1;
	p->ops = provider_lookup(p->type);
	if (!p->ops)
		return config_read_fail(ld, g, "type", "unknown provider type \"%s\"", p->type);
	bool bedrock = strcmp(p->type, "bedrock") == 0;
	if (config_read_dup_nonempty(ld, g, "base_url", NULL, &p->base_url) < 0)
		return -1;
	if (strncmp(p->base_url, "http://", 7) != 0 && strncmp(p->base_url, "https://", 8) != 0)
		return config_read_fail(ld, g, "base_url", "must be an http:// or https:// URL");
	len = strlen(p->base_url);
	while (len > 0 && p->base_url[len - 1] == '/')
		p->base_url[--len] = '\0';
	if (config_read_bool(ld, g, "optional", false, &p->optional) < 0 ||
	    config_read_ms(ld, g, "timeout_ms", 120000, &p->timeout_ms) < 0 ||
	    config_read_int(ld, g, "max_connections", 64, 1, 100000, &p->max_connections) < 0 ||
	    config_read_int64(ld, g, "rpm", 0, 0, INT64_C(1000000000000), &p->rpm) < 0 ||
	    config_read_int64(ld, g, "tpm", 0, 0, INT64_C(1000000000000), &p->tpm) < 0 ||
	    config_read_bool(ld, g, "batch", false, &p->batch) < 0 ||
	    config_read_refuse_secret(ld, g, "api_key", "api_key_env") < 0 ||
	    config_read_str(ld, g, "auth_header", &auth) < 0 ||
	    config_read_str(ld, g, "ca_file", &ca) < 0 ||
	    config_read_str(ld, g, "region", &region) < 0 || load_query(ld, g, p) < 0)
		return -1;
	if (p->batch && bedrock)
		return config_read_fail(ld, g, "batch", "is not supported for type bedrock");
	if (auth && !is_token(auth, strlen(auth)))
		return config_read_fail(ld, g, "auth_header",
		                        "must be a header name, e.g. \"api-key\"");
	if (auth)
		p->auth_header = xstrdup(auth);
	if (ca && access(ca, R_OK) != 0)
		return config_read_fail(ld, g, "ca_file", "cannot read %s: %s", ca,
		                        strerror(errno));
	if (ca)
		p->ca_file = xstrdup(ca);
	if (region &&
	    (!*region || strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region)))
		return config_read_fail(ld, g, "region",
		                        "must be an AWS region name, e.g. \"us-east-1\"");
	if (bedrock && !region)
		return config_read_fail(ld, g, "region", "is required for type bedrock");
	if (region)
		p->region = xstrdup(region);
	bool required = (ld->flags & CONFIG_REQUIRE_KEYS) && !p->optional;
	if (config_read_secret(ld, g, "api_key_env", required, &p->api_key_env, &p->api_key,
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

int config_load_model(struct loader *ld, const config_setting_t *g, struct config *cfg, size_t i)
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

	config_read_warn_unknown(ld, g, known);
	m->line = config_read_line(g);
	m->provider = -1;
	if (config_read_dup_nonempty(ld, g, "name", NULL, &m->name) < 0)
		return -1;
	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->models[j].name, m->name) == 0)
			return config_read_fail(ld, g, "name",
			                        "duplicate model name \"%s\" (first at line %d)",
			                        m->name, cfg->models[j].line);
	if (config_read_str(ld, g, "provider", &provider) < 0)
		return -1;
	if (!provider)
		return config_read_fail(ld, g, "provider", "is required");
	m->provider = config_provider_index(cfg, provider);
	if (m->provider < 0)
		return config_read_fail(ld, g, "provider", "no provider named \"%s\"", provider);
	if (config_read_dup_nonempty(ld, g, "id", m->name, &m->id) < 0 ||
	    config_read_usd(ld, g, "input_usd_per_mtok", 0, &pr->input_nusd_per_mtok) < 0 ||
	    config_read_usd(ld, g, "cached_input_usd_per_mtok", pr->input_nusd_per_mtok,
	                    &pr->cached_input_nusd_per_mtok) < 0 ||
	    config_read_usd(ld, g, "cache_write_usd_per_mtok", -1, &pr->cache_write_nusd_per_mtok) <
	            0 ||
	    config_read_usd(ld, g, "output_usd_per_mtok", 0, &pr->output_nusd_per_mtok) < 0 ||
	    config_read_int64(ld, g, "context_tokens", 128000, 1, 100000000, &m->context_tokens) <
	            0 ||
	    config_read_int64(ld, g, "default_max_tokens", 1024, 1, 1000000,
	                      &m->default_max_tokens) < 0 ||
	    config_read_double(ld, g, "quality", 0.5, 0, 1, &m->quality) < 0 ||
	    config_read_int64(ld, g, "latency_ms", 1000, 0, MS_MAX, &m->latency_ms) < 0 ||
	    config_read_bool(ld, g, "max_completion_tokens", false, &m->max_completion_tokens) <
	            0 ||
	    config_read_bool(ld, g, "structured_outputs", false, &m->structured_outputs) < 0 ||
	    config_read_str_list(ld, g, "capabilities", &caps) < 0 ||
	    config_read_int64(ld, g, "max_output_tokens", 0, 0, 100000000, &m->max_output_tokens) <
	            0 ||
	    config_read_int64(ld, g, "image_tokens", 1600, 0, 1000000, &m->image_tokens) < 0 ||
	    config_read_int64(ld, g, "pdf_page_tokens", 3000, 0, 1000000, &m->pdf_page_tokens) <
	            0 ||
	    config_read_int64(ld, g, "thinking_budget_low", 1024, 1, 10000000,
	                      &m->thinking_budget[EFFORT_LOW]) < 0 ||
	    config_read_int64(ld, g, "thinking_budget_medium", 8192, 1, 10000000,
	                      &m->thinking_budget[EFFORT_MEDIUM]) < 0 ||
	    config_read_int64(ld, g, "thinking_budget_high", 24576, 1, 10000000,
	                      &m->thinking_budget[EFFORT_HIGH]) < 0)
		return -1;
	for (int k = 0; caps && k < config_setting_length(caps); k++) {
		const char *name = config_setting_get_string_elem(caps, k);
		unsigned bit = 0;
		if (capability_parse(name, &bit) < 0)
			return config_read_fail(
			        ld, config_setting_get_elem(caps, (unsigned)k), NULL,
			        "unknown capability \"%s\" (json, json_schema, tools, vision, "
			        "pdf, reasoning, long_context)",
			        name);
		m->caps |= bit;
	}
	for (int k = 0; m->max_output_tokens && (m->caps & CAP_REASONING) && k < 3; k++)
		if (m->thinking_budget[k] >= m->max_output_tokens)
			return config_read_fail(ld, g,
			                        k == 0   ? "thinking_budget_low"
			                        : k == 1 ? "thinking_budget_medium"
			                                 : "thinking_budget_high",
			                        "must be less than max_output_tokens (%lld)",
			                        (long long)m->max_output_tokens);
	if (m->max_output_tokens && m->default_max_tokens > m->max_output_tokens)
		return config_read_fail(ld, g, "default_max_tokens",
		                        "must not exceed max_output_tokens (%lld)",
		                        (long long)m->max_output_tokens);
	/* Batch prices (SPEC §14): half the sync price, rounded up so that an
	 * estimate never falls short, unless the model says otherwise. */
	m->has_batch_price = cfg->providers[m->provider].batch;
	if (config_read_usd(ld, g, "batch_input_usd_per_mtok", (pr->input_nusd_per_mtok + 1) / 2,
	                    &bp->input_nusd_per_mtok) < 0 ||
	    config_read_usd(ld, g, "batch_cached_input_usd_per_mtok",
	                    (pr->cached_input_nusd_per_mtok + 1) / 2,
	                    &bp->cached_input_nusd_per_mtok) < 0 ||
	    config_read_usd(ld, g, "batch_output_usd_per_mtok", (pr->output_nusd_per_mtok + 1) / 2,
	                    &bp->output_nusd_per_mtok) < 0)
		return -1;
	bp->cache_write_nusd_per_mtok =
	        pr->cache_write_nusd_per_mtok < 0 ? -1 : (pr->cache_write_nusd_per_mtok + 1) / 2;
	return 0;
}
