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

/* Converts a price or limit given in USD (as written in a config) to nano-USD,
 * rounded to the nearest. Returns -1 if usd is negative, not finite or too large. */
int64_t money_usd_to_nusd(double usd);
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
 * cache writes x cache write price + output x output price, in nano-USD, rounded up. */
int64_t money_cost_nusd(const struct price *p, const struct usage *u);
/* ceil(tokens * nusd_per_mtok / 1e6), saturating at INT64_MAX. */
int64_t money_tokens_nusd(int64_t tokens, int64_t nusd_per_mtok);
/* Writes a nano-USD amount as a decimal USD number with up to 9 decimals, no
 * trailing zeros ("0.0001794"). out needs 32 bytes. */
void money_format_usd(int64_t nusd, char *out, unsigned long out_size);

#endif
