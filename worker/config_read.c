/* config_read: typed values out of libconfig's tree, and the first problem
 * reported as "FILE:LINE: KEY: problem" (config_int.h has the contracts).
 *
 * libconfig 1.5 reads an integer literal above 2147483647 without an L suffix
 * as a silently truncated int; nothing here can see that, so no limit needs a
 * value that large except with the suffix (the example file says so). */
#include "config_int.h"

#include "buf.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- errors and paths */

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

int config_read_line(const config_setting_t *s)
{
	int line = (int)config_setting_source_line(s);
	return line > 0 ? line : 1;
}

int config_read_fail(struct loader *ld, const config_setting_t *g, const char *name,
                     const char *fmt, ...)
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
	buf_printf(&b, "%s:%d: %s: ", setting_file(ld, at), config_read_line(at), key);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (ld->errstr && ld->errstr_size)
		snprintf(ld->errstr, ld->errstr_size, "%s", b.data);
	buf_free(&b);
	free(key);
	return -1;
}

void config_read_warn_unknown(const struct loader *ld, const config_setting_t *g,
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
		snprintf(line, sizeof line, "%d", config_read_line(m));
		log_warn("unknown configuration key", "file", setting_file(ld, m), "line", line,
		         "key", key, NULL);
		free(key);
	}
}

/* ---------------------------------------------------------------- typed values */

int config_read_int64(struct loader *ld, const config_setting_t *g, const char *name, int64_t def,
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
		return config_read_fail(ld, g, name, "must be an integer >= %lld", (long long)min);
	return config_read_fail(ld, g, name, "must be an integer from %lld to %lld", (long long)min,
	                        (long long)max);
}

int config_read_ms(struct loader *ld, const config_setting_t *g, const char *name, int64_t def,
                   int64_t *out)
{
	return config_read_int64(ld, g, name, def, 1, MS_MAX, out);
}

int config_read_int(struct loader *ld, const config_setting_t *g, const char *name, int def,
                    int min, int max, int *out)
{
	int64_t v = 0;

	if (config_read_int64(ld, g, name, def, min, max, &v) < 0)
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

int config_read_double(struct loader *ld, const config_setting_t *g, const char *name, double def,
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
	return config_read_fail(ld, g, name, "must be a number from %g to %g", min, max);
}

int config_read_usd(struct loader *ld, const config_setting_t *g, const char *name, int64_t def,
                    int64_t *out)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	double v = 0;
	int64_t nusd = -1;

	if (!s) {
		if (def == USD_REQUIRED)
			return config_read_fail(ld, g, name, "is required (a number of USD)");
		*out = def;
		return 0;
	}
	if (number_of(s, &v))
		nusd = money_usd_to_nusd(v);
	if (nusd < 0)
		return config_read_fail(ld, g, name,
		                        "must be a number of USD from 0 to 9000000000");
	*out = nusd;
	return 0;
}

int config_read_bool(struct loader *ld, const config_setting_t *g, const char *name, bool def,
                     bool *out)
{
	const config_setting_t *s = config_setting_get_member(g, name);

	if (!s) {
		*out = def;
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return config_read_fail(ld, g, name, "must be true or false");
	*out = config_setting_get_bool(s) != 0;
	return 0;
}

int config_read_str(struct loader *ld, const config_setting_t *g, const char *name,
                    const char **out)
{
	const config_setting_t *s = config_setting_get_member(g, name);

	*out = NULL;
	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_read_fail(ld, g, name, "must be a string");
	*out = config_setting_get_string(s);
	return 0;
}

int config_read_dup(struct loader *ld, const config_setting_t *g, const char *name, const char *def,
                    char **out)
{
	const char *v = NULL;

	if (config_read_str(ld, g, name, &v) < 0)
		return -1;
	if (!v && !def)
		return config_read_fail(ld, g, name, "is required");
	*out = xstrdup(v ? v : def);
	return 0;
}

int config_read_dup_nonempty(struct loader *ld, const config_setting_t *g, const char *name,
                             const char *def, char **out)
{
	if (config_read_dup(ld, g, name, def, out) < 0)
		return -1;
	if (!**out)
		return config_read_fail(ld, g, name, "must not be empty");
	return 0;
}

int config_read_str_list(struct loader *ld, const config_setting_t *g, const char *name,
                         const config_setting_t **out)
{
	const config_setting_t *s = config_setting_get_member(g, name);
	int n;

	*out = NULL;
	if (!s)
		return 0;
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return config_read_fail(ld, g, name, "must be a list of strings: [\"a\", \"b\"]");
	n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return config_read_fail(ld, e, NULL, "must be a string");
	}
	*out = s;
	return 0;
}

bool config_read_is_env_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

int config_read_env_secret(const char *env, char **secret, const char **why)
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

int config_read_secret(struct loader *ld, const config_setting_t *g, const char *name,
                       bool required, char **env, char **secret, char **missing)
{
	const char *why = NULL;

	if (config_read_dup(ld, g, name, "", env) < 0)
		return -1;
	if (!**env)
		return 0;
	if (!config_read_is_env_name(*env))
		return config_read_fail(
		        ld, g, name,
		        "must name an environment variable (letters, digits and _), "
		        "not hold the secret itself");
	if (config_read_env_secret(*env, secret, &why) < 0)
		return config_read_fail(ld, g, name, "environment variable %s %s", *env, why);
	if (*secret)
		return 0;
	if (required)
		return config_read_fail(ld, g, name, "environment variable %s %s", *env, why);
	if (missing && !*missing)
		*missing = xstrdup(*env);
	return 0;
}

int config_read_refuse_secret(struct loader *ld, const config_setting_t *g, const char *name,
                              const char *instead)
{
	if (config_setting_get_member(g, name))
		return config_read_fail(
		        ld, g, name,
		        "secrets are never written in the file: set %s to the name of an "
		        "environment variable instead",
		        instead);
	return 0;
}

bool config_read_is_listen_addr(const char *s)
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

int config_read_section(struct loader *ld, config_setting_t *root, const char *name,
                        const config_setting_t **out)
{
	config_setting_t *s = config_setting_get_member(root, name);

	if (!s)
		s = config_setting_add(root, name, CONFIG_TYPE_GROUP);
	if (!s || !config_setting_is_group(s))
		return config_read_fail(ld, root, name, "must be a group: %s = { ... };", name);
	*out = s;
	return 0;
}

int config_read_group_list(struct loader *ld, const config_setting_t *root, const char *name,
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
		return config_read_fail(ld, root, name,
		                        "must be a list of groups: %s = ( { ... }, { ... } );",
		                        name);
	for (int i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (!config_setting_is_group(e))
			return config_read_fail(ld, e, NULL,
			                        "must be a group: { name = \"...\"; ... }");
	}
	*out = s;
	*n = (size_t)len;
	return 0;
}
