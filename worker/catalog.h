/* catalog: LiteLLM's model_prices_and_context_window.json read into model
 * entries, for `promptyard catalog import` and `catalog check` (SPEC §15).
 *
 * The worker never reads LiteLLM's file; this module lives in worker/ so
 * that the unit tests and the libFuzzer target link it from the library,
 * as they do every other parser (producer-tools/cli_catalog.c is the
 * command line around it).
 *
 * The file is one JSON object: model key -> entry. A chat entry is one
 * whose "mode" is "chat" (promptyard speaks Chat Completions, Messages,
 * generateContent and Converse; "responses", "completion", "embedding",
 * image and audio entries are left out). "sample_spec", the file's own
 * documentation of its fields, is skipped.
 *
 * Prices are read from the numbers' decimal text, never through a double:
 * USD per token x 10^15 is nano-USD per million tokens, an exact integer
 * for any price with up to 15 decimals (a finer one is rounded up, with a
 * warning: an estimate may be high, never low). A price is refused when it
 * is negative, not a number, above the money bounds, or when its USD per
 * Mtok printed by catalog_format_usd would not read back (through a double,
 * as libconfig reads it) to the same nano-USD.
 *
 * Robustness: the file comes from outside. Text that is not JSON is an
 * error with its line and column; an entry whose known field has the wrong
 * type or an impossible value is skipped with a warning naming the entry
 * and the field; nothing else is trusted either. */
#ifndef PROMPTYARD_CATALOG_H
#define PROMPTYARD_CATALOG_H

#include "buf.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The prices an entry may carry, in the order they are printed. */
enum catalog_price {
	CATALOG_INPUT,        /* input_cost_per_token */
	CATALOG_CACHED,       /* cache_read_input_token_cost (or input_cost_per_token_cache_hit) */
	CATALOG_CACHE_WRITE,  /* cache_creation_input_token_cost */
	CATALOG_OUTPUT,       /* output_cost_per_token */
	CATALOG_BATCH_INPUT,  /* input_cost_per_token_batches */
	CATALOG_BATCH_CACHED, /* cache_read_input_token_cost_batches */
	CATALOG_BATCH_OUTPUT, /* output_cost_per_token_batches */
};
#define CATALOG_PRICES      7
#define CATALOG_TIER_PRICES 4 /* the first four have an above-a-prompt-size tier */

/* Contexts from this many tokens up get the long_context capability. */
#define CATALOG_LONG_CONTEXT_TOKENS 200000

/* The config key of a price ("cached_input_usd_per_mtok"). */
const char *catalog_price_key(enum catalog_price p);

struct catalog_entry {
	char *key;      /* the file's key, "gemini/gemini-2.5-pro" (new) */
	char *provider; /* its litellm_provider, "gemini" (new) */
	const char *id; /* the provider's own id: key without a "<provider>/" prefix (in key) */
	int line;       /* of the key in the file */
	/* nano-USD per million tokens, -1 when the file has none. A cache price
	 * of 0 beside a non-zero input price is taken as none: LiteLLM writes 0
	 * where it does not know, and a missing cache price is priced as input,
	 * which never under-counts. */
	int64_t price[CATALOG_PRICES];
	/* Prompts above tier_tokens cost tier[] (LiteLLM's
	 * *_above_<N>k_tokens keys, the smallest N); 0 when there is no tier.
	 * A tier price the file lacks is the base price. */
	int64_t tier_tokens;
	int64_t tier[CATALOG_TIER_PRICES];
	int64_t max_input_tokens;  /* 0 when absent */
	int64_t max_output_tokens; /* 0 when absent */
	/* json and json_schema from supports_response_schema, tools from
	 * supports_function_calling, vision, pdf (supports_pdf_input),
	 * reasoning. long_context is the caller's, from the context it uses. */
	unsigned caps;
	char *deprecation_date; /* new, NULL when absent */
};

struct catalog {
	struct catalog_entry *v; /* chat entries of the selected providers, in file order */
	size_t n, cap;
	/* "LINE: \"KEY\": field: problem" for each entry or price left out (new). */
	char **warnings;
	size_t n_warnings;
	size_t entries;    /* top-level members, sample_spec included */
	size_t not_chat;   /* entries of the selected providers whose mode is not "chat" */
	size_t unselected; /* entries of providers not selected */
	size_t skipped;    /* chat entries left out with a warning */
};

/* Which LiteLLM providers to take and the config provider each becomes:
 * "openai,anthropic=my-anthropic" takes litellm_provider "openai" as
 * provider "openai" and "anthropic" as "my-anthropic". n == 0: every
 * provider, under its own name. */
struct catalog_select {
	char **from; /* litellm_provider values (new) */
	char **to;   /* config provider names (new) */
	size_t n;
};

/* Parses a --providers list into sel (zeroed by the caller). Returns 0, or
 * -1 with errstr on an empty or malformed item (sel is then cleared). */
int catalog_select_parse(const char *spec, struct catalog_select *sel, char *errstr,
                         size_t errstr_size);
void catalog_select_clear(struct catalog_select *sel);
/* The config provider name for litellm_provider (borrowed), or NULL when
 * sel does not take it. sel may be NULL (every provider). */
const char *catalog_select_name(const struct catalog_select *sel, const char *provider);

/* Parses LiteLLM's JSON text[0..len) (not NUL-terminated) into out (zeroed
 * by the caller), keeping the chat entries of the providers sel takes (NULL:
 * all). Returns 0, or -1 with errstr "LINE:COLUMN: why" (from jansson when
 * the text is not JSON) and out cleared. Whatever
 * the input, it neither crashes nor leaks: this is the fuzz target's entry
 * point. catalog_clear(out) is needed either way. */
int catalog_parse(const char *text, size_t len, const struct catalog_select *sel,
                  struct catalog *out, char *errstr, size_t errstr_size);
void catalog_clear(struct catalog *c);

/* Writes a nano-USD per Mtok price as USD per Mtok the way a config reads it
 * back exactly: up to 9 decimals, no trailing zeros, always a decimal point
 * ("0.15", "3.0", "0.000000001"), so libconfig takes it as a float. out
 * needs 32 bytes. */
void catalog_format_usd(int64_t nusd_per_mtok, char *out, size_t out_size);
/* Whether catalog_format_usd's text reads back (strtod, then
 * money_usd_to_nusd, as config_load does) to the same nano-USD. */
bool catalog_usd_roundtrips(int64_t nusd_per_mtok);

/* Appends to out a libconfig `models = ( ... );` list of every entry of c,
 * with the config provider names of sel (NULL: the LiteLLM names), each
 * model named and identified by its id, plus a "<name>-long" model for the
 * prices of prompts above a tier. A name already taken becomes
 * "<provider>/<name>"; one still taken is left out with a warning appended
 * to c. source names the file in the header comment. Returns the number of
 * models written. */
size_t catalog_write_models(struct buf *out, struct catalog *c, const struct catalog_select *sel,
                            const char *source);

/* The entry that configured model m corresponds to (borrowed), or NULL:
 * entries whose id (or, failing that, whose key) equals m's id, or else
 * m's name; of several, the one whose litellm_provider is m's provider's
 * name, then one of the provider's type ("openai", "anthropic", "gemini";
 * "bedrock" and "bedrock_converse" for "bedrock"), then the first. */
const struct catalog_entry *catalog_match(const struct catalog *c, const struct config *cfg,
                                          const struct model_conf *m);

/* The prices m should have by entry e (nano-USD per Mtok, -1 where the file
 * says nothing): the tier prices when m's context_tokens exceeds the tier
 * (such a model takes prompts the tier prices), else the base ones. */
void catalog_expected(const struct catalog_entry *e, const struct model_conf *m,
                      int64_t out[CATALOG_PRICES]);

#endif
