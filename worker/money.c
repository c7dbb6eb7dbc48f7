/* money: nano-USD arithmetic. */
#include "money.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int64_t money_usd_to_nusd(double usd)
{
	if (!isfinite(usd) || usd < 0 || usd > 9.0e9)
		return -1;
	return (int64_t)llround(usd * 1e9);
}

int money_parse_usd(const char *s, int64_t *nusd)
{
	int64_t whole = 0, frac = 0;
	int decimals = 0;
	const char *p = s;
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (*p - '0');
		if (whole > MONEY_MAX_NUSD / NUSD_PER_USD)
			return -1;
	}
	if (p == s)
		return -1;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, decimals++) {
			if (decimals >= 9)
				return -1;
			frac = frac * 10 + (*p - '0');
		}
		if (decimals == 0)
			return -1;
	}
	if (*p)
		return -1;
	for (int i = decimals; i < 9; i++)
		frac *= 10;
	if (whole * NUSD_PER_USD + frac > MONEY_MAX_NUSD)
		return -1;
	*nusd = whole * NUSD_PER_USD + frac;
	return 0;
}

double money_nusd_to_usd(int64_t nusd)
{
	return (double)nusd / 1e9;
}

/* 128-bit products keep tokens x price exact: four products of two values
 * below 2^63 sum below 2^128. */
__extension__ typedef unsigned __int128 u128;

static int64_t ceil_div_mtok(u128 v)
{
	u128 q = (v + 999999) / 1000000;
	return q > (u128)MONEY_MAX_NUSD ? MONEY_MAX_NUSD : (int64_t)q;
}

static int64_t nonneg(int64_t v)
{
	return v > 0 ? v : 0;
}

int64_t money_tokens_nusd(int64_t tokens, int64_t nusd_per_mtok)
{
	if (tokens <= 0 || nusd_per_mtok <= 0)
		return 0;
	return ceil_div_mtok((u128)tokens * (u128)nusd_per_mtok);
}

int64_t money_cost_nusd(const struct price *p, const struct usage *u)
{
	int64_t cached = nonneg(u->cached_input_tokens), writes = nonneg(u->cache_write_tokens);
	int64_t out = nonneg(u->output_tokens);
	/* All three are in [0, INT64_MAX]: each subtraction stays in range. */
	int64_t plain = nonneg(u->input_tokens);
	plain = plain > cached ? plain - cached : 0;
	plain = plain > writes ? plain - writes : 0;
	int64_t wprice = p->cache_write_nusd_per_mtok >= 0 ? p->cache_write_nusd_per_mtok
	                                                   : p->input_nusd_per_mtok;
	u128 sum = (u128)plain * (u128)nonneg(p->input_nusd_per_mtok) +
	           (u128)cached * (u128)nonneg(p->cached_input_nusd_per_mtok) +
	           (u128)writes * (u128)nonneg(wprice) +
	           (u128)out * (u128)nonneg(p->output_nusd_per_mtok);
	return ceil_div_mtok(sum);
}

void money_format_usd(int64_t nusd, char *out, unsigned long out_size)
{
	/* "-", up to 10 digits of dollars (2^63 nano-USD), ".", 9 of nano-dollars. */
	char tmp[32], *p = tmp + sizeof tmp;
	uint64_t v = nusd < 0 ? (uint64_t)0 - (uint64_t)nusd : (uint64_t)nusd;
	uint64_t whole = v / 1000000000u, frac = v % 1000000000u;
	*--p = '\0';
	if (frac) {
		int n = 9;
		while (frac % 10 == 0) { /* no trailing zeros */
			frac /= 10;
			n--;
		}
		while (n--) {
			*--p = (char)('0' + frac % 10);
			frac /= 10;
		}
		*--p = '.';
	}
	do {
		*--p = (char)('0' + whole % 10);
		whole /= 10;
	} while (whole);
	if (nusd < 0)
		*--p = '-';
	snprintf(out, out_size, "%s", p);
}
