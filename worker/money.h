/* money: integer nano-USD (1e-9 USD). No float is ever summed or compared.
 *
 * Prices are kept as nano-USD per million tokens, so every price with up to
 * nine decimals in USD/Mtok is exact ($0.15/Mtok = 150000000). The cost of a
 * count of tokens is tokens * price / 1e6 nano-USD; a call's cost sums the
 * products first and divides once, rounding up, so no fraction is lost and
 * spend is never under-counted. */
#ifndef PROMPTYARD_MONEY_H
#define PROMPTYARD_MONEY_H

#include <stdint.h>

#define NUSD_PER_USD INT64_C(1000000000)

/* The largest amount of nano-USD one estimate, one cost or one budget limit
 * may be: 2^53 - 1 (about $9.007M). The C code, the ledger's Lua scripts and
 * the config share this one number: the scripts get it at build time (they
 * say @MONEY_MAX_NUSD_DIGITS@, which tests/tools/embed_lua.sh replaces with
 * the digits below), config_load() and `promptyard budget set` refuse a limit
 * above it, and the money_*_nusd() functions never return more.
 *
 * Why this number: the scripts compare amounts as Lua doubles (spent +
 * reserved + estimate > limit), and every integer up to 2^53 is an exact
 * double. While the exact sum is at most 2^53 every partial sum is exact; when
 * it is above, the rounded sum is still at least 2^53 (rounding is monotonic
 * and 2^53 is a double), so it is above any limit of at most 2^53 - 1 as it
 * should be. With a limit of 2^53 itself, 2^53 + 1 would round to 2^53 and
 * "fit". Each budget of a chain is compared on its own, so the chain adds no
 * sum of limits. A job's costs summed in C (at most 20 attempts) stay far
 * below INT64_MAX. */
#define MONEY_MAX_NUSD_DIGITS 9007199254740991
#define MONEY_MAX_NUSD        ((int64_t)MONEY_MAX_NUSD_DIGITS)

/* Converts a price or limit given in USD (as written in a config) to nano-USD,
 * rounded to the nearest. Returns -1 if usd is negative, not finite or too large. */
int64_t money_usd_to_nusd(double usd);
/* Parses a USD amount written as a decimal ("12.5", "0.000000001": digits, at
 * most 9 decimals, no sign or exponent) into nano-USD, exactly (no float).
 * Returns 0, or -1 if s is not one or is above MONEY_MAX_NUSD. */
int money_parse_usd(const char *s, int64_t *nusd);
/* For display only. */
double money_nusd_to_usd(int64_t nusd);

struct usage {
	int64_t input_tokens;        /* all input tokens, cached ones included */
	int64_t cached_input_tokens; /* of which read from the provider's cache */
	int64_t cache_write_tokens;  /* of which written to the cache (Anthropic) */
	int64_t output_tokens;       /* all output, thinking included */
	int64_t reasoning_tokens;    /* of which thinking (SPEC §13): priced as output */
};

struct price {
	int64_t input_nusd_per_mtok;
	int64_t cached_input_nusd_per_mtok;
	int64_t cache_write_nusd_per_mtok; /* priced as input unless the model sets it */
	int64_t output_nusd_per_mtok;
};

/* The cost of one call: uncached input x input price + cached x cached price +
 * cache writes x cache write price + output x output price, in nano-USD, rounded up.
 * Negative counts count as 0, and cached and written tokens beyond the input
 * leave no uncached input (no overflow, whatever the counts). The result is
 * exact up to MONEY_MAX_NUSD and saturates there: only absurd usage costs
 * more (10^12 tokens, a provider's garbage), and the caller gets an amount
 * every ledger step accepts, rather than one a settle refuses for ever. */
int64_t money_cost_nusd(const struct price *p, const struct usage *u);
/* ceil(tokens * nusd_per_mtok / 1e6), saturating at MONEY_MAX_NUSD; 0 for a
 * count or price <= 0. */
int64_t money_tokens_nusd(int64_t tokens, int64_t nusd_per_mtok);
/* Writes a nano-USD amount as a decimal USD number with up to 9 decimals, no
 * trailing zeros ("0.0001794"). out needs 32 bytes. */
void money_format_usd(int64_t nusd, char *out, unsigned long out_size);

#endif
