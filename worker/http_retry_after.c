/* http_retry_after: the Retry-After header's value (RFC 9110 §10.2.3),
 * delay-seconds or an HTTP-date, into a wait (see http.h). Part of the
 * HTTP client, apart from its loop: a parser of one header. */
#include "http.h"

#include "timeutil.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* A cursor over a header value being parsed; p == end when it is used up. */
struct cursor {
	const char *p, *end;
};

static bool take_char(struct cursor *c, char ch)
{
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

/* Exactly n digits (n <= 4) into *out. */
static bool take_digits(struct cursor *c, int n, int *out)
{
	int v = 0;
	if (c->end - c->p < n)
		return false;
	for (int i = 0; i < n; i++) {
		char ch = c->p[i];
		if (ch < '0' || ch > '9')
			return false;
		v = v * 10 + (ch - '0');
	}
	c->p += n;
	*out = v;
	return true;
}

/* One of names (compared without case, the whole word) into *index. */
static bool take_name(struct cursor *c, const char *const *names, int n, int *index)
{
	for (int i = 0; i < n; i++) {
		size_t l = strlen(names[i]);
		if ((size_t)(c->end - c->p) >= l && strncasecmp(c->p, names[i], l) == 0 &&
		    ((size_t)(c->end - c->p) == l ||
		     !((c->p[l] | 0x20) >= 'a' && (c->p[l] | 0x20) <= 'z'))) {
			c->p += l;
			*index = i;
			return true;
		}
	}
	return false;
}

static const char *const day_names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_names_long[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                             "Friday", "Saturday", "Sunday"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* "HH:MM:SS" (a leap second allowed) into seconds of the day. */
static bool take_time(struct cursor *c, int *secs)
{
	int h, m, s;
	if (!take_digits(c, 2, &h) || !take_char(c, ':') || !take_digits(c, 2, &m) ||
	    !take_char(c, ':') || !take_digits(c, 2, &s))
		return false;
	if (h > 23 || m > 59 || s > 60)
		return false;
	*secs = h * 3600 + m * 60 + s;
	return true;
}

static int days_in_month(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* The civil year of a Unix time in ms (the inverse of time_days_from_civil). */
static int year_of(int64_t unix_ms)
{
	int64_t z = unix_ms / 86400000 + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	return (int)(yoe + era * 400 + (mp >= 10));
}

/* An HTTP-date (RFC 9110 §5.6.7) into Unix seconds: IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850 ("Sunday, 06-Nov-94 08:49:37
 * GMT", its two-digit year read as the RFC says: more than 50 years ahead
 * of now is the century before) and asctime ("Sun Nov  6 08:49:37 1994").
 * Names are taken in any case; the weekday is not checked against the date. */
static int http_date_parse(struct cursor *c, int64_t now_ms, int64_t *unix_s)
{
	int wday, day, month, year, secs;
	if (take_name(c, day_names_long, 7, &wday)) {
		/* RFC 850 */
		if (!take_char(c, ',') || !take_char(c, ' ') || !take_digits(c, 2, &day) ||
		    !take_char(c, '-') || !take_name(c, month_names, 12, &month) ||
		    !take_char(c, '-') || !take_digits(c, 2, &year) || !take_char(c, ' ') ||
		    !take_time(c, &secs) || !take_char(c, ' ') || !take_char(c, 'G') ||
		    !take_char(c, 'M') || !take_char(c, 'T'))
			return -1;
		int now_year = year_of(now_ms);
		year += now_year - now_year % 100;
		if (year > now_year + 50)
			year -= 100;
	} else if (take_name(c, day_names, 7, &wday)) {
		if (take_char(c, ',')) {
			/* IMF-fixdate */
			if (!take_char(c, ' ') || !take_digits(c, 2, &day) || !take_char(c, ' ') ||
			    !take_name(c, month_names, 12, &month) || !take_char(c, ' ') ||
			    !take_digits(c, 4, &year) || !take_char(c, ' ') ||
			    !take_time(c, &secs) || !take_char(c, ' ') || !take_char(c, 'G') ||
			    !take_char(c, 'M') || !take_char(c, 'T'))
				return -1;
		} else {
			/* asctime: the day is two digits or a space and one */
			if (!take_char(c, ' ') || !take_name(c, month_names, 12, &month) ||
			    !take_char(c, ' '))
				return -1;
			if (take_char(c, ' ')) {
				if (!take_digits(c, 1, &day))
					return -1;
			} else if (!take_digits(c, 2, &day)) {
				return -1;
			}
			if (!take_char(c, ' ') || !take_time(c, &secs) || !take_char(c, ' ') ||
			    !take_digits(c, 4, &year))
				return -1;
		}
	} else {
		return -1;
	}
	(void)wday;
	month++;
	if (c->p != c->end || day < 1 || day > days_in_month(year, month))
		return -1;
	*unix_s = time_days_from_civil(year, month, day) * 86400 + secs;
	return 0;
}

int64_t http_retry_after_ms(const char *v, size_t len, int64_t now_ms)
{
	struct cursor c = {v, v + len};
	while (c.p < c.end && (*c.p == ' ' || *c.p == '\t'))
		c.p++;
	while (c.end > c.p &&
	       (c.end[-1] == ' ' || c.end[-1] == '\t' || c.end[-1] == '\r' || c.end[-1] == '\n'))
		c.end--;
	if (c.p == c.end)
		return -1;
	if (*c.p >= '0' && *c.p <= '9') {
		/* delay-seconds = 1*DIGIT, saturating: any number of digits is fine. */
		int64_t secs = 0;
		for (; c.p < c.end; c.p++) {
			if (*c.p < '0' || *c.p > '9')
				return -1;
			if (secs <= HTTP_RETRY_AFTER_MAX_MS / 1000)
				secs = secs * 10 + (*c.p - '0');
		}
		return secs < HTTP_RETRY_AFTER_MAX_MS / 1000 ? secs * 1000
		                                             : HTTP_RETRY_AFTER_MAX_MS;
	}
	int64_t when_s;
	if (http_date_parse(&c, now_ms, &when_s) != 0)
		return -1;
	/* A four-digit year keeps when_s * 1000 far inside int64_t. */
	int64_t delta = when_s * 1000 - now_ms;
	if (delta < 0)
		return 0;
	return delta < HTTP_RETRY_AFTER_MAX_MS ? delta : HTTP_RETRY_AFTER_MAX_MS;
}
