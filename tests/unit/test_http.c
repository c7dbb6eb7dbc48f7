/* http: Retry-After values (RFC 9110 §10.2.3) and request building. The
 * transport itself is tested by the integration tests, over plain HTTP and
 * over TLS with HTTP/1.1 and HTTP/2 (tests/integration/test_tls.py). */
#include "http.h"
#include "unit.h"

#include <stdlib.h>

/* Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example, in Unix ms. */
#define EXAMPLE_MS INT64_C(784111777000)
#define DAY_MS     INT64_C(86400000)

static int64_t ra(const char *v, int64_t now_ms)
{
	return http_retry_after_ms(v, strlen(v), now_ms);
}

TEST(retry_after_delay_seconds)
{
	CHECK_INT(ra("0", 0), 0);
	CHECK_INT(ra("3", 0), 3000);
	CHECK_INT(ra(" 3", 0), 3000);
	CHECK_INT(ra("\t120 \r\n", 0), 120000);
	CHECK_INT(ra("007", 0), 7000);
	/* Not counted: only the given bytes are read. */
	CHECK_INT(http_retry_after_ms("12345", 2, 0), 12000);
	/* A day at most, however many digits. */
	CHECK_INT(ra("86399", 0), 86399000);
	CHECK_INT(ra("86400", 0), HTTP_RETRY_AFTER_MAX_MS);
	CHECK_INT(ra("86401", 0), HTTP_RETRY_AFTER_MAX_MS);
	CHECK_INT(ra("9223372036854775807", 0), HTTP_RETRY_AFTER_MAX_MS);
	CHECK_INT(ra("99999999999999999999999999999999999999999999999999999999999999", 0),
	          HTTP_RETRY_AFTER_MAX_MS);
}

TEST(retry_after_hostile_values)
{
	/* Nothing a float parser would take: none of these is delay-seconds. */
	const char *bad[] = {"",      " ",   "-1",     "-0",   "+5",       "0.5",  "1.",
	                     "1e300", "1E3", "inf",    "INF",  "infinity", "nan",  "NaN",
	                     "0x10",  "5s",  "5 5",    "soon", "1,2",      "\xff", "5\x01",
	                     "\v5",   "٣",   "-86400", "-inf", "1e-300",   ".5",   "5.0"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t got = ra(bad[i], EXAMPLE_MS);
		if (got != -1)
			UNIT_FAIL("\"%s\" gave %" PRId64 ", expected -1", bad[i], got);
	}
	/* A NUL inside the value is not the end of it. */
	CHECK_INT(http_retry_after_ms("5\0"
	                              "9",
	                              3, 0),
	          -1);
}

TEST(retry_after_http_dates)
{
	/* The three forms RFC 9110 §5.6.7 makes recipients accept. */
	CHECK_INT(ra("Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_MS - 5000), 5000);
	CHECK_INT(ra("Sunday, 06-Nov-94 08:49:37 GMT", EXAMPLE_MS - 5000), 5000);
	CHECK_INT(ra("Sun Nov  6 08:49:37 1994", EXAMPLE_MS - 5000), 5000);
	CHECK_INT(ra("Sun Nov 16 08:49:37 1994", EXAMPLE_MS), HTTP_RETRY_AFTER_MAX_MS);
	CHECK_INT(ra("Mon Nov  7 08:49:36 1994", EXAMPLE_MS), DAY_MS - 1000);
	/* Names in any case; whitespace around the value. */
	CHECK_INT(ra("  sun, 06 NOV 1994 08:49:37 GMT \r\n", EXAMPLE_MS - 1000), 1000);
	/* In the past: now. Far ahead: a day. */
	CHECK_INT(ra("Wed, 21 Oct 2015 07:28:00 GMT", EXAMPLE_MS + 700 * DAY_MS * 30), 0);
	CHECK_INT(ra("Fri, 31 Dec 9999 23:59:59 GMT", EXAMPLE_MS), HTTP_RETRY_AFTER_MAX_MS);
	CHECK_INT(ra("Thu, 01 Jan 1970 00:00:00 GMT", EXAMPLE_MS), 0);
	/* Leap day and leap second. */
	CHECK_INT(ra("Thu, 29 Feb 2024 00:00:00 GMT", INT64_C(1709164800000) - 1), 1);
	CHECK_INT(ra("Sat, 31 Dec 2016 23:59:60 GMT", INT64_C(1483228799000)), 1000);
	/* Two-digit years: more than 50 years ahead is the century before. */
	int64_t now_2026 = INT64_C(1767225600000); /* 2026-01-01 */
	CHECK_INT(ra("Thursday, 01-Jan-26 00:00:30 GMT", now_2026), 30000);
	CHECK_INT(ra("Friday, 01-Jan-77 00:00:00 GMT", now_2026), 0); /* 1977 */
	CHECK_INT(ra("Sunday, 01-Jan-76 00:00:00 GMT", now_2026),
	          HTTP_RETRY_AFTER_MAX_MS); /* 2076 */
}

TEST(retry_after_malformed_dates)
{
	const char *bad[] = {
	        "Sun, 06 Nov 1994 08:49:37",        /* no zone */
	        "Sun, 06 Nov 1994 08:49:37 UTC",    /* not GMT */
	        "Sun, 06 Nov 1994 08:49:37 GMT x",  /* trailing bytes */
	        "Sun, 6 Nov 1994 08:49:37 GMT",     /* one-digit day */
	        "Sun, 06 Nov 94 08:49:37 GMT",      /* two-digit year in IMF-fixdate */
	        "Sun, 31 Nov 1994 08:49:37 GMT",    /* no such day */
	        "Sun, 29 Feb 1900 08:49:37 GMT",    /* not a leap year */
	        "Sun, 00 Nov 1994 08:49:37 GMT",    /* day 0 */
	        "Sun, 06 Nov 1994 24:00:00 GMT",    /* hour 24 */
	        "Sun, 06 Nov 1994 08:60:00 GMT",    /* minute 60 */
	        "Sun, 06 Nov 1994 08:49:61 GMT",    /* second 61 */
	        "Sun, 06 Foo 1994 08:49:37 GMT",    /* no such month */
	        "Sund, 06 Nov 1994 08:49:37 GMT",   /* no such day name */
	        "Sunday, 06 Nov 1994 08:49:37 GMT", /* long day name, IMF layout */
	        "Sun, 06-Nov-94 08:49:37 GMT",      /* short day name, RFC 850 layout */
	        "Sun Nov 6 08:49:37 1994",          /* asctime's day is two wide */
	        "Sun Nov  6 08:49:37 94",           /* asctime's year is four digits */
	        "Sun, 06 Nov 1994 8:49:37 GMT",     /* one-digit hour */
	        "Sun, 06 Nov +994 08:49:37 GMT",    "Sun, 06 Nov 1994 08:49:3", "Sun,", "Sun",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t got = ra(bad[i], EXAMPLE_MS);
		if (got != -1)
			UNIT_FAIL("\"%s\" gave %" PRId64 ", expected -1", bad[i], got);
	}
	/* The NUL case counted in full. */
	CHECK_INT(http_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT\0", 30, EXAMPLE_MS), -1);
}

TEST(requests_are_built_and_wiped)
{
	struct http_request req = {0};
	buf_puts(&req.url, "https://example.invalid/v1/chat/completions");
	http_request_add_header(&req, "Authorization: Bearer %s", "sk-test");
	http_request_add_header(&req, "Content-Type: application/json");
	buf_puts(&req.body, "{}");
	CHECK_INT(req.n_headers, 2);
	CHECK_STR(req.headers[0], "Authorization: Bearer sk-test");
	CHECK_STR(req.headers[1], "Content-Type: application/json");
	http_request_clear(&req);
	CHECK(req.headers == NULL && req.n_headers == 0);
	CHECK(req.url.data == NULL && req.body.data == NULL);
	http_request_clear(&req); /* twice is fine */
}

int main(void)
{
	RUN(retry_after_delay_seconds);
	RUN(retry_after_hostile_values);
	RUN(retry_after_http_dates);
	RUN(retry_after_malformed_dates);
	RUN(requests_are_built_and_wiped);
	return unit_done();
}
