/* libFuzzer target of http_retry_after_ms (STYLE: what is hand-written has one).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Iworker \
 *         tests/fuzz/fuzz_retry_after.c worker/http_retry_after.c worker/buf.c worker/timeutil.c \
 *         worker/log.c worker/testhook.c -lcurl -luv -o build/fuzz_retry_after
 *   build/fuzz_retry_after -max_total_time=60 tests/fuzz/corpus/retry_after
 *
 * The input is a Retry-After value. The parser must read nothing outside it
 * and give -1 or a wait in [0, HTTP_RETRY_AFTER_MAX_MS]. Digits alone are
 * delay-seconds, cut at a day; a date ahead of now must be one that
 * curl_getdate (curl's own date parser, which reads RFC 9110's three forms
 * and more) reads as the same second. */
#include "http.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 2026-01-01T00:00:00Z: dates around it are in the future or the past. */
#define NOW_MS INT64_C(1767225600000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The value in a block of its own size, so that a read past it is seen. */
	char *v = malloc(size ? size : 1);
	memcpy(v, data, size);
	int64_t got = http_retry_after_ms(v, size, NOW_MS);
	if (got != -1 && (got < 0 || got > HTTP_RETRY_AFTER_MAX_MS))
		abort();

	/* The value trimmed as the parser trims it, NUL-terminated. */
	size_t a = 0, b = size;
	while (a < b && (v[a] == ' ' || v[a] == '\t'))
		a++;
	while (b > a &&
	       (v[b - 1] == ' ' || v[b - 1] == '\t' || v[b - 1] == '\r' || v[b - 1] == '\n'))
		b--;
	char *s = malloc(b - a + 1);
	memcpy(s, v + a, b - a);
	s[b - a] = '\0';
	bool digits = b > a;
	for (size_t i = a; i < b; i++)
		digits = digits && v[i] >= '0' && v[i] <= '9';
	if (digits) {
		/* delay-seconds: the number, saturated at a day. */
		int64_t secs = 0;
		for (size_t i = a; i < b && secs < HTTP_RETRY_AFTER_MAX_MS; i++)
			secs = secs * 10 + (v[i] - '0');
		int64_t want = secs < HTTP_RETRY_AFTER_MAX_MS / 1000 ? secs * 1000
		                                                     : HTTP_RETRY_AFTER_MAX_MS;
		if (got != want)
			abort();
	} else if (got > 0 && memchr(s, '\0', b - a) == NULL) {
		/* A date ahead of now: curl must read the same second. (Dates in
		 * the past are 0; curl reads years before 1583 as none and four
		 * digits below 100 as a two-digit year, so they are not compared.) */
		time_t when = curl_getdate(s, NULL);
		/* RFC 850's two-digit year: RFC 9110 reads one more than 50 years
		 * ahead as the century before; curl reads 70-99 as 19xx. */
		if (when != -1 && strchr(s, '-') != NULL && when < 220924800) /* before 1977 */
			when += (time_t)36525 * 86400; /* 19xx -> 20xx: 25 leap days */
		int64_t delta = (int64_t)when * 1000 - NOW_MS;
		int64_t want = delta < HTTP_RETRY_AFTER_MAX_MS ? delta : HTTP_RETRY_AFTER_MAX_MS;
		if (when == -1 || got != want)
			abort();
	}
	free(s);
	free(v);
	return 0;
}
