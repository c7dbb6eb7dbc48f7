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

double money_nusd_to_usd(int64_t nusd)
{
	return (double)nusd / 1e9;
}

/* 128-bit products keep tokens x price exact for any sane counts. */
__extension__ typedef unsigned __int128 u128;

static int64_t ceil_div_mtok(u128 v)
{
	u128 q = (v + 999999) / 1000000;
	return q > (u128)INT64_MAX ? INT64_MAX : (int64_t)q;
}

int64_t money_tokens_nusd(int64_t tokens, int64_t nusd_per_mtok)
{
	if (tokens <= 0 || nusd_per_mtok <= 0)
		return 0;
	return ceil_div_mtok((u128)tokens * (u128)nusd_per_mtok);
}

int64_t money_cost_nusd(const struct price *p, const struct usage *u)
{
	int64_t cached = u->cached_input_tokens > 0 ? u->cached_input_tokens : 0;
	int64_t writes = u->cache_write_tokens > 0 ? u->cache_write_tokens : 0;
	int64_t plain = u->input_tokens - cached - writes;
	if (plain < 0)
		plain = 0;
	int64_t out = u->output_tokens > 0 ? u->output_tokens : 0;
	int64_t wprice = p->cache_write_nusd_per_mtok >= 0 ? p->cache_write_nusd_per_mtok
	                                                   : p->input_nusd_per_mtok;
	u128 sum = (u128)plain * (u128)p->input_nusd_per_mtok +
	           (u128)cached * (u128)p->cached_input_nusd_per_mtok +
	           (u128)writes * (u128)wprice + (u128)out * (u128)p->output_nusd_per_mtok;
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
