/* timeutil: clocks and RFC 3339. */
#include "timeutil.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t offset_ms;

void time_set_offset_ms(int64_t ms)
{
	offset_ms = ms;
}

int64_t time_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + offset_ms;
}

int64_t time_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes v as n decimal digits (0 <= v < 10^n) at p. */
static void put_digits(char *p, int v, int n)
{
	while (n--) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

void time_format_rfc3339(int64_t unix_ms, char *out, size_t out_size)
{
	/* The calendar of the last second formatted, kept: results and cost
	 * records of one second share it, and gmtime_r is not free. */
	static __thread time_t last_secs;
	static __thread struct tm last_tm;
	static __thread bool last_valid;
	time_t secs = (time_t)(unix_ms / 1000);
	int ms = (int)(unix_ms % 1000);
	if (ms < 0) {
		ms += 1000;
		secs -= 1;
	}
	if (!last_valid || secs != last_secs) {
		gmtime_r(&secs, &last_tm);
		last_secs = secs;
		last_valid = true;
	}
	const struct tm *tm = &last_tm;
	int year = tm->tm_year + 1900;
	if (year < 0 || year > 9999 || out_size < 25) {
		snprintf(out, out_size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year, tm->tm_mon + 1,
		         tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec, ms);
		return;
	}
	memcpy(out, "0000-00-00T00:00:00.000Z", 25);
	put_digits(out, year, 4);
	put_digits(out + 5, tm->tm_mon + 1, 2);
	put_digits(out + 8, tm->tm_mday, 2);
	put_digits(out + 11, tm->tm_hour, 2);
	put_digits(out + 14, tm->tm_min, 2);
	put_digits(out + 17, tm->tm_sec, 2);
	put_digits(out + 20, ms, 3);
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	*out = v;
	return 0;
}

/* Howard Hinnant's algorithm. */
int64_t time_days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

int time_parse_rfc3339(const char *s, int64_t *unix_ms)
{
	const char *p = s;
	int y, mo, d, h, mi, sec, ms = 0;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d))
		return -1;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -1;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &sec))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
		return -1;
	if (*p == '.') {
		p++;
		int n = 0;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p)) {
			if (n < 3)
				ms = ms * 10 + (*p - '0');
			n++;
			p++;
		}
		for (; n < 3; n++)
			ms *= 10;
	}
	int64_t off_min = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
			return -1;
		off_min = sign * (oh * 60 + om);
	} else {
		return -1;
	}
	if (*p)
		return -1;
	/* A leap second is inserted at the end of a UTC day (RFC 3339 5.7):
	 * :60 elsewhere is no time at all. It counts as :59 of that minute. */
	int64_t utc_min = ((h * 60 + mi - off_min) % 1440 + 1440) % 1440;
	if (sec == 60 && utc_min != 1439)
		return -1;
	int64_t days = time_days_from_civil(y, mo, d);
	int64_t t = days * 86400 + h * 3600 + mi * 60 + (sec > 59 ? 59 : sec) - off_min * 60;
	*unix_ms = t * 1000 + ms;
	return 0;
}
