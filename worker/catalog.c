/* catalog: see catalog.h. */
#include "catalog.h"

#include "jscan.h"
#include "money.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a config takes (config.c): context_tokens and max_output_tokens up to this. */
#define TOKENS_MAX INT64_C(100000000)
/* money_usd_to_nusd refuses more than 9e9 USD per Mtok. */
#define PRICE_MAX INT64_C(9000000000000000000)
/* USD per token x 10^15 = nano-USD per million tokens. */
#define PRICE_SCALE 15
/* default_max_tokens of an imported model; its reasoning tokens are output too. */
#define DEFAULT_MAX_TOKENS           1024
#define DEFAULT_MAX_TOKENS_REASONING 4096

static const struct {
	const char *file; /* LiteLLM's key */
	const char *alt;  /* an older name read when file is absent, or NULL */
	const char *config;
} price_keys[CATALOG_PRICES] = {
        [CATALOG_INPUT] = {"input_cost_per_token", NULL, "input_usd_per_mtok"},
        [CATALOG_CACHED] = {"cache_read_input_token_cost", "input_cost_per_token_cache_hit",
                            "cached_input_usd_per_mtok"},
        [CATALOG_CACHE_WRITE] = {"cache_creation_input_token_cost", NULL,
                                 "cache_write_usd_per_mtok"},
        [CATALOG_OUTPUT] = {"output_cost_per_token", NULL, "output_usd_per_mtok"},
        [CATALOG_BATCH_INPUT] = {"input_cost_per_token_batches", NULL, "batch_input_usd_per_mtok"},
        [CATALOG_BATCH_CACHED] = {"cache_read_input_token_cost_batches", NULL,
                                  "batch_cached_input_usd_per_mtok"},
        [CATALOG_BATCH_OUTPUT] = {"output_cost_per_token_batches", NULL,
                                  "batch_output_usd_per_mtok"},
};

static const struct {
	const char *key;
	unsigned caps;
} flag_keys[] = {
        /* A model that answers to a JSON Schema can be made to answer a JSON
         * object (an open schema), so the one flag gives both. */
        {"supports_response_schema", CAP_JSON | CAP_JSON_SCHEMA},
        {"supports_function_calling", CAP_TOOLS},
        {"supports_vision", CAP_VISION},
        {"supports_pdf_input", CAP_PDF},
        {"supports_reasoning", CAP_REASONING},
};
#define N_FLAGS (sizeof flag_keys / sizeof flag_keys[0])

const char *catalog_price_key(enum catalog_price p)
{
	return (unsigned)p < CATALOG_PRICES ? price_keys[p].config : "?";
}

/* ---------------------------------------------------------------- names */

/* Model ids and provider names go into libconfig strings and comments:
 * printable ASCII without blanks, quotes or backslashes, as every real one is. */
static bool plain_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e || *s == '"' || *s == '\\')
			return false;
	return true;
}

int catalog_select_parse(const char *spec, struct catalog_select *sel, char *errstr,
                         size_t errstr_size)
{
	const char *p = spec;
	for (;;) {
		size_t len = strcspn(p, ",");
		char *item = xstrndup(p, len);
		char *eq = strchr(item, '=');
		char *to = eq ? eq + 1 : item;
		if (eq)
			*eq = '\0';
		if (!plain_name(item) || !plain_name(to)) {
			snprintf(errstr, errstr_size,
			         "\"%.*s\" is not PROVIDER or PROVIDER=NAME (printable, no blanks)",
			         (int)len, p);
			free(item);
			catalog_select_clear(sel);
			return -1;
		}
		sel->from = xrealloc(sel->from, (sel->n + 1) * sizeof *sel->from);
		sel->to = xrealloc(sel->to, (sel->n + 1) * sizeof *sel->to);
		sel->from[sel->n] = xstrdup(item);
		sel->to[sel->n] = xstrdup(to);
		sel->n++;
		free(item);
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

void catalog_select_clear(struct catalog_select *sel)
{
	for (size_t i = 0; i < sel->n; i++) {
		free(sel->from[i]);
		free(sel->to[i]);
	}
	free(sel->from);
	free(sel->to);
	memset(sel, 0, sizeof *sel);
}

const char *catalog_select_name(const struct catalog_select *sel, const char *provider)
{
	if (!sel || !sel->n)
		return provider;
	for (size_t i = 0; i < sel->n; i++)
		if (strcmp(sel->from[i], provider) == 0)
			return sel->to[i];
	return NULL;
}

/* ---------------------------------------------------------------- numbers */

enum dec_error { DEC_OK = 0, DEC_NEGATIVE = -1, DEC_TOO_LARGE = -2, DEC_NOT_NUMBER = -3 };

/* The JSON number v times 10^scale as an integer, rounded up: *inexact says
 * whether a fraction was rounded. Works on the decimal text, so "1.5e-07"
 * at scale 15 is exactly 150000000. A negative number (other than zero) and
 * one above max are refused. */
static enum dec_error dec_scaled(const struct jval *v, int scale, int64_t max, int64_t *out,
                                 bool *inexact)
{
	if (jv_type(v) != J_INTEGER && jv_type(v) != J_REAL)
		return DEC_NOT_NUMBER;
	const char *s = v->s, *end = v->s + v->len;
	bool neg = s < end && *s == '-';
	s += neg;
	const char *int_start = s;
	while (s < end && *s >= '0' && *s <= '9')
		s++;
	const char *int_end = s, *frac_start = s, *frac_end = s;
	if (s < end && *s == '.') {
		frac_start = ++s;
		while (s < end && *s >= '0' && *s <= '9')
			s++;
		frac_end = s;
	}
	int64_t exp = 0;
	if (s < end && (*s == 'e' || *s == 'E')) {
		s++;
		bool eneg = s < end && *s == '-';
		if (s < end && (*s == '-' || *s == '+'))
			s++;
		for (; s < end && *s >= '0' && *s <= '9'; s++)
			if (exp < 1000000000) /* saturate: 10^±1e9 is zero or too large anyway */
				exp = exp * 10 + (*s - '0');
		if (eneg)
			exp = -exp;
	}
	if (s != end || int_start == int_end)
		return DEC_NOT_NUMBER;

	/* The digits, integer part then fraction, as one string D of n digits;
	 * the value is D x 10^(exp - fraction digits). */
	int64_t n_int = int_end - int_start, n = n_int + (frac_end - frac_start);
#define DIGIT(i) ((i) < n_int ? int_start[(i)] : frac_start[(i)-n_int])
	int64_t first = 0;
	while (first < n && DIGIT(first) == '0')
		first++;
	*inexact = false;
	*out = 0;
	if (first == n)
		return DEC_OK; /* zero, "-0" included */
	if (neg)
		return DEC_NEGATIVE;
	int64_t sig = n - first;                           /* significant digits */
	int64_t e = exp - (frac_end - frac_start) + scale; /* value = M x 10^e */
	int64_t int_digits = sig + e;                      /* digits of the integer part */
	if (int_digits > 19)
		return DEC_TOO_LARGE;
	uint64_t val = 0;
	for (int64_t i = 0; i < int_digits && i < sig; i++)
		val = val * 10 + (uint64_t)(DIGIT(first + i) - '0');
	for (int64_t i = sig; i < int_digits; i++) /* e > 0: trailing zeros */
		val *= 10;
	for (int64_t i = int_digits > 0 ? int_digits : 0; i < sig; i++)
		if (DIGIT(first + i) != '0') {
			*inexact = true;
			val++;
			break;
		}
#undef DIGIT
	if (val > (uint64_t)max)
		return DEC_TOO_LARGE;
	*out = (int64_t)val;
	return DEC_OK;
}

void catalog_format_usd(int64_t nusd_per_mtok, char *out, size_t out_size)
{
	money_format_usd(nusd_per_mtok, out, out_size);
	if (!strchr(out, '.') && strlen(out) + 3 <= out_size)
		strcat(out, ".0");
}

bool catalog_usd_roundtrips(int64_t nusd_per_mtok)
{
	char s[40];
	catalog_format_usd(nusd_per_mtok, s, sizeof s);
	return money_usd_to_nusd(strtod(s, NULL)) == nusd_per_mtok;
}

/* ---------------------------------------------------------------- parsing */

struct parse {
	struct catalog *c;
	const struct catalog_select *sel;
	const char *text;
	const char *line_at; /* lines are counted up to here */
	int line;
	struct catalog_entry *e; /* the entry being read */
	char *key;               /* its key (unescaped) */
	bool bad;                /* e is left out */
};

/* The line of p, which must not come before the previous call's. */
static int line_of(struct parse *ps, const char *p)
{
	for (; ps->line_at < p; ps->line_at++)
		if (*ps->line_at == '\n')
			ps->line++;
	return ps->line;
}

static void add_warning(struct catalog *c, int line, const char *key, const char *field,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void add_warning(struct catalog *c, int line, const char *key, const char *field,
                        const char *fmt, ...)
{
	struct buf b = {0};
	va_list ap;
	buf_printf(&b, "%d: ", line);
	buf_json_str(&b, key, strlen(key));
	buf_puts(&b, ": ");
	if (field)
		buf_printf(&b, "%s: ", field);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	c->warnings = xrealloc(c->warnings, (c->n_warnings + 1) * sizeof *c->warnings);
	c->warnings[c->n_warnings++] = buf_take(&b);
}

/* Leaves the entry out with a warning on field. */
static void reject(struct parse *ps, const char *field, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void reject(struct parse *ps, const char *field, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	if (ps->bad)
		return; /* one warning per entry: the first problem */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	add_warning(ps->c, ps->e->line, ps->key, field, "%s; entry skipped", msg);
	ps->bad = true;
}

static void entry_clear(struct catalog_entry *e)
{
	free(e->key);
	free(e->provider);
	free(e->deprecation_date);
	memset(e, 0, sizeof *e);
}

/* Reads price field = v into *out, or rejects the entry. */
static void read_price(struct parse *ps, const char *field, const struct jval *v, int64_t *out)
{
	bool inexact = false;
	int64_t nusd = 0;
	switch (dec_scaled(v, PRICE_SCALE, PRICE_MAX, &nusd, &inexact)) {
	case DEC_OK: break;
	case DEC_NEGATIVE: reject(ps, field, "negative price"); return;
	case DEC_TOO_LARGE: reject(ps, field, "price beyond the money bounds"); return;
	case DEC_NOT_NUMBER: reject(ps, field, "not a number"); return;
	}
	if (!catalog_usd_roundtrips(nusd)) {
		reject(ps, field, "price too large to write exactly in a config");
		return;
	}
	if (inexact) {
		char usd[40];
		catalog_format_usd(nusd, usd, sizeof usd);
		add_warning(ps->c, ps->e->line, ps->key, field,
		            "finer than a nano-USD per million tokens: rounded up to $%s/Mtok",
		            usd);
	}
	*out = nusd;
}

/* Reads token count field = v (1 to TOKENS_MAX) into *out, or rejects. */
static void read_tokens(struct parse *ps, const char *field, const struct jval *v, int64_t *out)
{
	bool inexact = false;
	int64_t n = 0;
	if (dec_scaled(v, 0, TOKENS_MAX, &n, &inexact) != DEC_OK || inexact || n < 1)
		reject(ps, field, "not a whole number of tokens from 1 to %lld",
		       (long long)TOKENS_MAX);
	else
		*out = n;
}

/* A tier key: "<price key>_above_<N>k_tokens" for one of the four sync
 * prices. Returns the price's index and sets *tokens, or -1. */
static int tier_key(const char *k, int64_t *tokens)
{
	for (int i = 0; i < CATALOG_TIER_PRICES; i++) {
		size_t n = strlen(price_keys[i].file);
		if (strncmp(k, price_keys[i].file, n) != 0 || strncmp(k + n, "_above_", 7) != 0)
			continue;
		const char *d = k + n + 7;
		int64_t v = 0;
		size_t digits = 0;
		for (; d[digits] >= '0' && d[digits] <= '9' && digits < 6; digits++)
			v = v * 10 + (d[digits] - '0');
		if (digits == 0 || v == 0 || strcmp(d + digits, "k_tokens") != 0)
			continue;
		*tokens = v * 1000;
		return i;
	}
	return -1;
}

/* Reads the members of entry object obj into ps->e. */
static void read_members(struct parse *ps, const struct jval *obj)
{
	struct catalog_entry *e = ps->e;
	const struct jval *k = obj + 1;
	struct buf name = {0};
	bool primary[CATALOG_PRICES] = {false};

	for (uint32_t m = 0; m < obj->n && !ps->bad; m++) {
		const struct jval *v = k + 1;
		buf_reset(&name);
		jv_buf_text(&name, k);
		const char *f = name.data ? name.data : "";
		k = v + v->span;
		if (jv_is_null(v))
			continue; /* null is absent, as jansson's json_object_get sees it */
		int64_t tokens = 0;
		int t = tier_key(f, &tokens);
		for (int i = 0; i < CATALOG_PRICES; i++) {
			if (strcmp(f, price_keys[i].file) == 0) {
				read_price(ps, f, v, &e->price[i]);
				primary[i] = true;
			} else if (price_keys[i].alt && strcmp(f, price_keys[i].alt) == 0 &&
			           !primary[i]) {
				read_price(ps, f, v, &e->price[i]);
			}
		}
		if (t >= 0 && (!e->tier_tokens || tokens <= e->tier_tokens)) {
			if (tokens != e->tier_tokens) /* a smaller threshold: its prices win */
				for (int i = 0; i < CATALOG_TIER_PRICES; i++)
					e->tier[i] = -1;
			e->tier_tokens = tokens;
			read_price(ps, f, v, &e->tier[t]);
		}
		if (strcmp(f, "max_input_tokens") == 0)
			read_tokens(ps, f, v, &e->max_input_tokens);
		else if (strcmp(f, "max_output_tokens") == 0)
			read_tokens(ps, f, v, &e->max_output_tokens);
		else if (strcmp(f, "deprecation_date") == 0 && jv_is_string(v)) {
			/* Informational, into a comment: kept only when it looks like a date. */
			char date[16];
			jv_cstr(v, date, sizeof date);
			free(e->deprecation_date);
			e->deprecation_date = strspn(date, "0123456789-") == strlen(date) && *date
			                              ? xstrdup(date)
			                              : NULL;
		}
		for (size_t i = 0; i < N_FLAGS; i++) {
			if (strcmp(f, flag_keys[i].key) != 0)
				continue;
			if (jv_type(v) == J_TRUE)
				e->caps |= flag_keys[i].caps;
			else if (jv_type(v) == J_FALSE)
				e->caps &= ~flag_keys[i].caps;
			else
				reject(ps, f, "not true or false");
		}
	}
	buf_free(&name);
}

/* The key's length of "<provider>/" to drop for the provider's own id; 0 if none. */
static size_t prefix_len(const char *key, const char *provider)
{
	size_t n = strlen(provider);
	if (strncmp(key, provider, n) == 0 && key[n] == '/')
		return n + 1;
	/* Bedrock's two LiteLLM routes share the "bedrock/" prefix. */
	if (strncmp(provider, "bedrock", 7) == 0 && strncmp(key, "bedrock/", 8) == 0)
		return 8;
	return 0;
}

/* Checks and completes ps->e once its members are read. */
static void finish_entry(struct parse *ps)
{
	struct catalog_entry *e = ps->e;
	if (e->price[CATALOG_INPUT] < 0)
		reject(ps, price_keys[CATALOG_INPUT].file, "missing");
	if (e->price[CATALOG_OUTPUT] < 0)
		reject(ps, price_keys[CATALOG_OUTPUT].file, "missing");
	if (ps->bad)
		return;
	if (e->price[CATALOG_INPUT] > 0) {
		for (int i = 0; i < CATALOG_PRICES; i++)
			if (i != CATALOG_INPUT && i != CATALOG_OUTPUT && e->price[i] == 0)
				e->price[i] = -1;
		for (int i = 0; i < CATALOG_TIER_PRICES; i++)
			if (i != CATALOG_INPUT && i != CATALOG_OUTPUT && e->tier[i] == 0)
				e->tier[i] = -1;
	}
	if (e->tier_tokens)
		for (int i = 0; i < CATALOG_TIER_PRICES; i++)
			if (e->tier[i] < 0)
				e->tier[i] = e->price[i];
}

/* Reads one top-level member; appends it to the catalog when it is kept. */
static void read_entry(struct parse *ps, const struct jval *key, const struct jval *val)
{
	struct catalog *c = ps->c;
	struct catalog_entry e = {0};
	struct buf b = {0};

	jv_buf_text(&b, key);
	ps->key = b.data ? buf_take(&b) : xstrdup("");
	ps->e = &e;
	ps->bad = false;
	e.line = line_of(ps, key->s);
	for (int i = 0; i < CATALOG_PRICES; i++)
		e.price[i] = -1;
	for (int i = 0; i < CATALOG_TIER_PRICES; i++)
		e.tier[i] = -1;
	c->entries++;
	if (strcmp(ps->key, "sample_spec") == 0)
		goto out;
	if (!jv_is_object(val)) {
		reject(ps, NULL, "not an object");
		goto out;
	}
	const struct jval *prov = jv_get(val, "litellm_provider");
	const struct jval *mode = jv_get(val, "mode");
	if (!jv_is_string(prov)) {
		reject(ps, "litellm_provider",
		       prov && !jv_is_null(prov) ? "not a string" : "missing");
		goto out;
	}
	jv_buf_text(&b, prov);
	e.provider = b.data ? buf_take(&b) : xstrdup("");
	if (!catalog_select_name(ps->sel, e.provider)) {
		c->unselected++;
		goto out;
	}
	if (mode && !jv_is_string(mode) && !jv_is_null(mode)) {
		reject(ps, "mode", "not a string");
		goto out;
	}
	if (!jv_str_eq(mode, "chat")) {
		c->not_chat++;
		goto out;
	}
	e.key = xstrdup(ps->key);
	e.id = e.key + prefix_len(e.key, e.provider);
	if (!plain_name(e.id) || !plain_name(e.provider)) {
		reject(ps, NULL,
		       "not a model id and provider (printable ASCII, no blanks or quotes)");
		goto out;
	}
	/* Not callable models: fine-tuning price templates, and Bedrock prices
	 * by region or commitment ("bedrock/us-east-1/..."). */
	if (strncmp(e.id, "ft:", 3) == 0 ||
	    (strncmp(e.provider, "bedrock", 7) == 0 && strchr(e.id, '/'))) {
		c->not_chat++;
		goto out;
	}
	read_members(ps, val);
	finish_entry(ps);
	if (ps->bad)
		goto out;
	/* A repeated key: the last one counts, as jansson keeps the last. */
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].key, e.key) == 0) {
			entry_clear(&c->v[i]);
			memmove(&c->v[i], &c->v[i + 1], (c->n - i - 1) * sizeof *c->v);
			c->n--;
			break;
		}
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->v = xrealloc(c->v, c->cap * sizeof *c->v);
	}
	c->v[c->n++] = e;
	memset(&e, 0, sizeof e); /* handed over */
out:
	if (ps->bad)
		c->skipped++;
	entry_clear(&e);
	free(ps->key);
	ps->key = NULL;
	ps->e = NULL;
}

int catalog_parse(const char *text, size_t len, const struct catalog_select *sel,
                  struct catalog *out, char *errstr, size_t errstr_size)
{
	struct jdoc doc;
	int rc = -1;

	if (jdoc_parse(&doc, text, len) != 0) {
		json_error_t jerr;
		json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
		if (!j)
			snprintf(errstr, errstr_size, "%d:%d: %s", jerr.line, jerr.column,
			         jerr.text);
		else if (!json_is_object(j))
			snprintf(errstr, errstr_size, "the top level is not an object");
		else
			snprintf(errstr, errstr_size,
			         "not JSON this reader takes (nested too deep?)");
		json_decref(j);
		goto out;
	}
	const struct jval *root = jdoc_root(&doc);
	struct parse ps = {.c = out, .sel = sel, .text = text, .line_at = text, .line = 1};
	if (!jv_is_object(root)) {
		const char *at = root->s, *bol = at; /* the opening bracket */
		while (bol > text && bol[-1] != '\n')
			bol--;
		snprintf(errstr, errstr_size, "%d:%d: the top level is not an object",
		         line_of(&ps, at), (int)(at - bol) + 1);
		goto out;
	}
	const struct jval *k = root + 1;
	for (uint32_t i = 0; i < root->n; i++) {
		const struct jval *v = k + 1;
		read_entry(&ps, k, v);
		k = v + v->span;
	}
	rc = 0;
out:
	jdoc_free(&doc);
	if (rc != 0)
		catalog_clear(out);
	return rc;
}

void catalog_clear(struct catalog *c)
{
	for (size_t i = 0; i < c->n; i++)
		entry_clear(&c->v[i]);
	free(c->v);
	for (size_t i = 0; i < c->n_warnings; i++)
		free(c->warnings[i]);
	free(c->warnings);
	memset(c, 0, sizeof *c);
}

/* ---------------------------------------------------------------- writing */

struct names {
	char **v;
	size_t n;
};

static bool name_taken(const struct names *ns, const char *name)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0)
			return true;
	return false;
}

/* A free name for the model: base, else "<provider>/<base>" (new), or NULL. */
static char *claim_name(struct names *ns, const char *provider, const char *base)
{
	struct buf b = {0};
	buf_puts(&b, base);
	if (name_taken(ns, b.data)) {
		buf_reset(&b);
		buf_printf(&b, "%s/%s", provider, base);
		if (name_taken(ns, b.data)) {
			buf_free(&b);
			return NULL;
		}
	}
	ns->v = xrealloc(ns->v, (ns->n + 1) * sizeof *ns->v);
	ns->v[ns->n++] = xstrdup(b.data);
	return buf_take(&b);
}

/* Lines of an imported model stay within this many columns where they can. */
#define WRAP_COLUMNS 96

/* Appends "key = value;" items of the given prices, 4 spaces in, wrapped. */
static void put_prices(struct buf *out, const int64_t *price, int from, int to)
{
	size_t col = 0;
	for (int i = from; i < to; i++) {
		char usd[40], item[96];
		if (price[i] < 0)
			continue;
		catalog_format_usd(price[i], usd, sizeof usd);
		int n = snprintf(item, sizeof item, "%s = %s;", price_keys[i].config, usd);
		if (col && col + 1 + (size_t)n > WRAP_COLUMNS) {
			buf_puts(out, "\n");
			col = 0;
		}
		buf_printf(out, "%s%s", col ? " " : "    ", item);
		col += (col ? 1 : 4) + (size_t)n;
	}
	if (col)
		buf_puts(out, "\n");
}

/* One model of entry e: the base prices, or with long the tier's. */
static void put_model(struct buf *out, const struct catalog_entry *e, const char *name,
                      const char *provider, bool long_tier)
{
	int64_t context = e->max_input_tokens;
	const int64_t *price = e->price;
	int64_t tier_price[CATALOG_PRICES];

	if (long_tier) {
		for (int i = 0; i < CATALOG_PRICES; i++)
			tier_price[i] = i < CATALOG_TIER_PRICES ? e->tier[i] : -1;
		price = tier_price;
	} else if (e->tier_tokens && (!context || context > e->tier_tokens)) {
		context = e->tier_tokens;
	}
	buf_printf(out, "  # LiteLLM \"%s\" (%s)\n", e->key, e->provider);
	if (e->deprecation_date)
		buf_printf(out, "  # LiteLLM's deprecation_date: %s\n", e->deprecation_date);
	if (long_tier)
		buf_printf(out,
		           "  # Prompts above %lld tokens, at LiteLLM's *_above_%lldk_tokens "
		           "prices\n  # (batch prices: the config's default).\n",
		           (long long)e->tier_tokens, (long long)e->tier_tokens / 1000);
	else if (context && context < e->max_input_tokens)
		buf_printf(out,
		           "  # context_tokens capped at %lld: longer prompts cost more "
		           "(%s-long).\n",
		           (long long)context, name);
	if (!price[CATALOG_INPUT] && !price[CATALOG_OUTPUT])
		buf_puts(out, "  # Both prices are 0 in the file: a free or local model, or "
		              "unknown prices.\n");
	buf_printf(out, "  { name = \"%s\"; provider = \"%s\"; id = \"%s\";\n", name, provider,
	           e->id);
	put_prices(out, price, 0, CATALOG_TIER_PRICES);
	put_prices(out, price, CATALOG_TIER_PRICES, CATALOG_PRICES);

	int64_t dmax = e->caps & CAP_REASONING ? DEFAULT_MAX_TOKENS_REASONING : DEFAULT_MAX_TOKENS;
	if (e->max_output_tokens && e->max_output_tokens < dmax)
		dmax = e->max_output_tokens;
	buf_puts(out, "   ");
	if (context)
		buf_printf(out, " context_tokens = %lld;", (long long)context);
	if (e->max_output_tokens)
		buf_printf(out, " max_output_tokens = %lld;", (long long)e->max_output_tokens);
	buf_printf(out, " default_max_tokens = %lld;\n", (long long)dmax);
	if (!context)
		buf_puts(out, "    # no max_input_tokens in the file: context_tokens is the "
		              "config's default (128000)\n");
	/* OpenAI's reasoning models refuse max_tokens. */
	if (strcmp(e->provider, "openai") == 0 && (e->caps & CAP_REASONING))
		buf_puts(out, "    max_completion_tokens = true;\n");
	buf_puts(out, "    quality = 0.5; latency_ms = 1000; # not in LiteLLM's file: set them\n");

	static const unsigned order[] = {CAP_JSON, CAP_JSON_SCHEMA, CAP_TOOLS,       CAP_VISION,
	                                 CAP_PDF,  CAP_REASONING,   CAP_LONG_CONTEXT};
	unsigned caps = e->caps;
	if (context >= CATALOG_LONG_CONTEXT_TOKENS)
		caps |= CAP_LONG_CONTEXT;
	buf_puts(out, "    capabilities = [");
	size_t col = 20; /* wrapped lines line up after the bracket */
	for (size_t i = 0, n = 0; i < sizeof order / sizeof order[0]; i++) {
		if (!(caps & order[i]))
			continue;
		const char *cap = capability_name(order[i]);
		size_t w = strlen(cap) + 4; /* quotes, comma, blank */
		if (n && col + w > WRAP_COLUMNS) {
			buf_puts(out, ",\n                    ");
			col = 20;
		} else if (n) {
			buf_puts(out, ", ");
		}
		buf_printf(out, "\"%s\"", cap);
		col += w;
		n++;
	}
	buf_puts(out, "]; }");
}

size_t catalog_write_models(struct buf *out, struct catalog *c, const struct catalog_select *sel,
                            const char *source)
{
	struct names names = {0}, providers = {0};
	struct buf body = {0};
	size_t written = 0;

	for (size_t i = 0; i < c->n; i++) {
		const struct catalog_entry *e = &c->v[i];
		const char *provider = catalog_select_name(sel, e->provider);
		if (!provider)
			continue;
		bool has_long = e->tier_tokens && e->max_input_tokens > e->tier_tokens;
		for (int pass = 0; pass < (has_long ? 2 : 1); pass++) {
			struct buf base = {0};
			buf_printf(&base, "%s%s", e->id, pass ? "-long" : "");
			char *name = claim_name(&names, provider, base.data);
			if (!name) {
				add_warning(
				        c, e->line, e->key, NULL,
				        "the names \"%s\" and \"%s/%s\" are both taken; left out",
				        base.data, provider, base.data);
			} else {
				buf_puts(&body, written ? ",\n\n" : "");
				put_model(&body, e, name, provider, pass == 1);
				written++;
				if (!name_taken(&providers, provider)) {
					providers.v =
					        xrealloc(providers.v,
					                 (providers.n + 1) * sizeof *providers.v);
					providers.v[providers.n++] = xstrdup(provider);
				}
			}
			free(name);
			buf_free(&base);
		}
	}

	buf_printf(out,
	           "# promptyard catalog import: %zu model%s from %s\n"
	           "# (LiteLLM's model_prices_and_context_window.json, chat entries).\n"
	           "# Prices are LiteLLM's, converted exactly to USD per million tokens.\n"
	           "# quality and latency_ms are not in the file: every model has 0.5 and\n"
	           "# 1000 ms here; set them (strategies balanced, auto and fastest use them).\n",
	           written, written == 1 ? "" : "s", source);
	if (providers.n) {
		size_t col = 0;
		buf_puts(out, "# The providers these models need:");
		col = 34;
		for (size_t i = 0; i < providers.n; i++) {
			size_t n = strlen(providers.v[i]) + 2;
			if (col + n > WRAP_COLUMNS) {
				buf_puts(out, i ? ",\n#" : "\n#");
				col = 1;
			} else if (i) {
				buf_puts(out, ",");
			}
			buf_printf(out, " %s", providers.v[i]);
			col += n;
		}
		buf_puts(out, ".\n");
	}
	buf_printf(out, "models = (%s%s%s);\n", written ? "\n" : " ", body.data ? body.data : "",
	           written ? "\n" : "");

	for (size_t i = 0; i < names.n; i++)
		free(names.v[i]);
	free(names.v);
	for (size_t i = 0; i < providers.n; i++)
		free(providers.v[i]);
	free(providers.v);
	buf_free(&body);
	return written;
}

/* ---------------------------------------------------------------- checking */

/* Does LiteLLM provider p serve config provider type t? */
static bool serves_type(const char *p, const char *t)
{
	if (strcmp(t, "bedrock") == 0)
		return strncmp(p, "bedrock", 7) == 0;
	return strcmp(p, t) == 0;
}

const struct catalog_entry *catalog_match(const struct catalog *c, const struct config *cfg,
                                          const struct model_conf *m)
{
	const struct provider_conf *p = &cfg->providers[m->provider];
	const char *want[2] = {m->id, m->name};

	for (int w = 0; w < 2; w++) {
		const struct catalog_entry *best = NULL;
		int best_rank = 3;
		for (size_t i = 0; i < c->n; i++) {
			const struct catalog_entry *e = &c->v[i];
			if (strcmp(e->id, want[w]) != 0 && strcmp(e->key, want[w]) != 0)
				continue;
			int rank = strcmp(e->provider, p->name) == 0   ? 0
			           : serves_type(e->provider, p->type) ? 1
			                                               : 2;
			if (rank < best_rank) {
				best = e;
				best_rank = rank;
			}
		}
		if (best)
			return best;
	}
	return NULL;
}

void catalog_expected(const struct catalog_entry *e, const struct model_conf *m,
                      int64_t out[CATALOG_PRICES])
{
	bool tier = e->tier_tokens && m->context_tokens > e->tier_tokens;
	for (int i = 0; i < CATALOG_PRICES; i++)
		out[i] = !tier ? e->price[i] : i < CATALOG_TIER_PRICES ? e->tier[i] : -1;
}
