/* Unit tests of the small core modules: money, timeutil, buf. */
#include "buf.h"
#include "log.h"
#include "money.h"
#include "testhook.h"
#include "timeutil.h"
#include "unit.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

TEST(money_spec_example)
{
	/* SPEC §4: 812 input at $0.15/Mtok + 96 output at $0.60/Mtok = 179400 nano-USD. */
	struct price p = {.input_nusd_per_mtok = money_usd_to_nusd(0.15),
	                  .cached_input_nusd_per_mtok = money_usd_to_nusd(0.075),
	                  .cache_write_nusd_per_mtok = -1,
	                  .output_nusd_per_mtok = money_usd_to_nusd(0.60)};
	struct usage u = {.input_tokens = 812, .output_tokens = 96};
	CHECK_INT(money_cost_nusd(&p, &u), 179400);
	CHECK_INT(money_tokens_nusd(1, p.input_nusd_per_mtok), 150);
}

TEST(money_cached_and_rounding)
{
	struct price p = {.input_nusd_per_mtok = money_usd_to_nusd(2.5),
	                  .cached_input_nusd_per_mtok = money_usd_to_nusd(1.25),
	                  .cache_write_nusd_per_mtok = money_usd_to_nusd(3.125),
	                  .output_nusd_per_mtok = money_usd_to_nusd(10)};
	/* 1000 input of which 400 cached and 100 written: 500*2500 + 400*1250 + 100*3125 + 10*10000 */
	struct usage u = {.input_tokens = 1000,
	                  .cached_input_tokens = 400,
	                  .cache_write_tokens = 100,
	                  .output_tokens = 10};
	CHECK_INT(money_cost_nusd(&p, &u), 500 * 2500 + 400 * 1250 + 100 * 3125 + 10 * 10000);
	/* A fraction of a nano-USD rounds up: one token at $0.0375/Mtok = 37.5 -> 38. */
	struct price q = {.input_nusd_per_mtok = money_usd_to_nusd(0.0375),
	                  .cache_write_nusd_per_mtok = -1};
	struct usage one = {.input_tokens = 1};
	CHECK_INT(money_cost_nusd(&q, &one), 38);
	struct usage two = {.input_tokens = 2};
	CHECK_INT(money_cost_nusd(&q, &two), 75);
	/* Cache writes without their own price are priced as input. */
	struct price r = {.input_nusd_per_mtok = 1000000, .cache_write_nusd_per_mtok = -1};
	struct usage w = {.input_tokens = 10, .cache_write_tokens = 4};
	CHECK_INT(money_cost_nusd(&r, &w), 10);
}

TEST(money_conversions)
{
	CHECK_INT(money_usd_to_nusd(100.0), 100000000000LL);
	CHECK_INT(money_usd_to_nusd(0.000000001), 1);
	CHECK_INT(money_usd_to_nusd(-1), -1);
	char s[32];
	money_format_usd(179400, s, sizeof s);
	CHECK_STR(s, "0.0001794");
	money_format_usd(0, s, sizeof s);
	CHECK_STR(s, "0");
	money_format_usd(12500000000LL, s, sizeof s);
	CHECK_STR(s, "12.5");
	money_format_usd(1, s, sizeof s);
	CHECK_STR(s, "0.000000001");
}

/* Absurd usage (a provider's garbage, 10^12 tokens, INT64_MAX) is neither
 * undefined behaviour nor an amount the ledger refuses: the cost saturates
 * at MONEY_MAX_NUSD. */
TEST(money_cost_saturates)
{
	struct price p = {.input_nusd_per_mtok = money_usd_to_nusd(60),
	                  .cached_input_nusd_per_mtok = money_usd_to_nusd(30),
	                  .cache_write_nusd_per_mtok = money_usd_to_nusd(75),
	                  .output_nusd_per_mtok = money_usd_to_nusd(120)};
	struct usage trillion = {.input_tokens = 1000000000000LL};
	CHECK_INT(money_cost_nusd(&p, &trillion), MONEY_MAX_NUSD);
	struct usage max = {.input_tokens = INT64_MAX,
	                    .cached_input_tokens = INT64_MAX,
	                    .cache_write_tokens = INT64_MAX,
	                    .output_tokens = INT64_MAX};
	CHECK_INT(money_cost_nusd(&p, &max), MONEY_MAX_NUSD);
	/* Cached and written tokens far above the input: once an int64 overflow. */
	struct usage over = {.input_tokens = 0,
	                     .cached_input_tokens = INT64_MAX,
	                     .cache_write_tokens = INT64_MAX};
	CHECK_INT(money_cost_nusd(&p, &over), MONEY_MAX_NUSD);
	struct usage negative = {.input_tokens = INT64_MIN,
	                         .cached_input_tokens = INT64_MIN,
	                         .cache_write_tokens = INT64_MIN,
	                         .output_tokens = INT64_MIN};
	CHECK_INT(money_cost_nusd(&p, &negative), 0);
	CHECK_INT(money_tokens_nusd(INT64_MAX, INT64_MAX), MONEY_MAX_NUSD);
	/* Up to the bound a cost is exact: 2^53 - 1 nano-USD at 1e6 nano-USD/Mtok. */
	struct price one = {.input_nusd_per_mtok = 1000000, .cache_write_nusd_per_mtok = -1};
	struct usage at = {.input_tokens = MONEY_MAX_NUSD};
	CHECK_INT(money_cost_nusd(&one, &at), MONEY_MAX_NUSD);
	struct usage below = {.input_tokens = MONEY_MAX_NUSD - 1};
	CHECK_INT(money_cost_nusd(&one, &below), MONEY_MAX_NUSD - 1);
	/* Twenty attempts at the bound (worker.max_attempts is at most 20) add up
	 * without an overflow. */
	CHECK(MONEY_MAX_NUSD <= INT64_MAX / 20);
}

TEST(money_parse_usd_exact_and_bounded)
{
	int64_t v = -1;
	CHECK(money_parse_usd("12.5", &v) == 0 && v == 12500000000LL);
	CHECK(money_parse_usd("0.000000001", &v) == 0 && v == 1);
	CHECK(money_parse_usd("0", &v) == 0 && v == 0);
	CHECK(money_parse_usd("9007199.254740991", &v) == 0 && v == MONEY_MAX_NUSD);
	static const char *const bad[] = {"9007199.254740992",
	                                  "9007200",
	                                  "99999999999999999999",
	                                  "1.0000000001",
	                                  "",
	                                  ".5",
	                                  "1.",
	                                  "-1",
	                                  "1e3",
	                                  "abc",
	                                  " 1",
	                                  "1 "};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = -7;
		if (money_parse_usd(bad[i], &v) != 0 && v == -7)
			continue;
		UNIT_FAIL("\"%s\" parsed as %lld", bad[i], (long long)v);
	}
}

/* ---------------------------------------------------------------- secrets in memory */

/* Reads len bytes at addr through /proc/self/mem, which the sanitizers do
 * not watch (the bytes may be freed, or below the stack pointer); pages that
 * cannot be read count as zeros. out must hold len bytes. */
static void peek(int fd, uintptr_t addr, size_t len, char *out)
{
	memset(out, 0, len);
	for (size_t off = 0; off < len;) {
		size_t n = 4096 - (size_t)((addr + off) % 4096);
		if (n > len - off)
			n = len - off;
		if (pread(fd, out + off, n, (off_t)(addr + off)) < 0)
			memset(out + off, 0, n);
		off += n;
	}
}

/* A fresh key of 64 hex digits: no earlier test left it anywhere. */
static char *fresh_key(void)
{
	unsigned char r[32];
	char *key = malloc(2 * sizeof r + 1);
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		for (size_t i = 0; i < sizeof r; i++)
			r[i] = (unsigned char)rand();
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(key + 2 * i, 3, "%02x", r[i]);
	return key;
}

/* A secret buf that grows or is freed leaves no copy of its bytes in the
 * block it let go of (realloc and free did). */
TEST(buf_secret_leaves_no_copy_when_it_grows)
{
	int fd = open("/proc/self/mem", O_RDONLY);
	char *key = fresh_key(), seen[256];
	CHECK(fd >= 0);
	/* The key from byte 16 on: an allocator may write its own words over
	 * the first bytes of a block it frees. */
	struct buf b = {.secret = true};
	buf_puts(&b, "x-api-key:      ");
	buf_puts(&b, key);
	uintptr_t old = (uintptr_t)b.data;
	size_t old_cap = b.cap;
	CHECK(old_cap <= sizeof seen);
	for (int i = 0; i < 40; i++)
		buf_puts(&b, "padding ");
	if ((uintptr_t)b.data != old) { /* realloc could have grown it in place */
		peek(fd, old, old_cap, seen);
		CHECK(!memmem(seen, old_cap, key, strlen(key)));
	}
	CHECK_HAS(b.data, key);
	uintptr_t last = (uintptr_t)b.data;
	size_t last_cap = b.cap;
	char *all = malloc(last_cap);
	buf_free(&b);
	peek(fd, last, last_cap, all);
	CHECK(!memmem(all, last_cap, key, strlen(key)));
	free(all);
	free(key);
	close(fd);
}

/* Formats a line from deep in the stack, below where the caller looks. */
static __attribute__((noinline)) void format_deep(struct buf *b, const char *key, const char *pad)
{
	volatile char depth[8192];
	depth[0] = depth[sizeof depth - 1] = 0;
	buf_printf(b, "Authorization: Bearer %s%s", key, pad);
	(void)depth[0];
}

/* buf_printf() leaves no copy of what it formatted on the stack, when the
 * line is long as well (a header line with a key; the copy was wiped only
 * when the line was short). */
TEST(buf_printf_leaves_nothing_on_the_stack)
{
	int fd = open("/proc/self/mem", O_RDONLY);
	char *key = fresh_key(), pad[300];
	size_t span = 16384;
	char *below = malloc(span);
	CHECK(fd >= 0);
	memset(pad, '.', sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	struct buf b = {.secret = true};
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	format_deep(&b, key, pad);
	CHECK_HAS(b.data, key);
	buf_free(&b);
	/* From 2 KiB below this frame (what the calls from here may use) to
	 * 18 KiB, where format_deep's callees ran. */
	peek(fd, sp - 2048 - span, span, below);
	CHECK(!memmem(below, span, key, strlen(key)));
	free(below);
	free(key);
	close(fd);
}

/* The release build's testhook_getenv(): worker/testhook.c compiled once
 * more, here, without PROMPTYARD_TEST_HOOKS. */
#undef PROMPTYARD_TEST_HOOKS
#define testhook_getenv release_testhook_getenv
#include "../../worker/testhook.c"
#undef testhook_getenv

/* Reads a hook with stderr copied into log (log_size bytes). */
static const char *hook_logged(const char *(*get)(const char *), const char *name, char *log,
                               size_t log_size)
{
	char path[] = "/tmp/test_core_hook.XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	const char *v = get(name);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ssize_t n = pread(fd, log, log_size - 1, 0);
	log[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return v;
}

/* A test hook works in the test build (this one) and says so in a warning;
 * a release build ignores it, and says that. */
TEST(test_hooks_only_in_the_test_build)
{
	char log[1024];
	enum log_level was = log_min_level;
	log_set_level(LOG_WARN);
	setenv("PROMPTYARD_TEST_SOME_HOOK", "42", 1);
	CHECK_STR(hook_logged(testhook_getenv, "PROMPTYARD_TEST_SOME_HOOK", log, sizeof log), "42");
	CHECK_HAS(log, "\"msg\":\"test hook set: this process is being tested\"");
	CHECK_HAS(log, "\"variable\":\"PROMPTYARD_TEST_SOME_HOOK\"");
	CHECK(hook_logged(release_testhook_getenv, "PROMPTYARD_TEST_SOME_HOOK", log, sizeof log) ==
	      NULL);
	CHECK_HAS(log, "\"msg\":\"test hook ignored: a release build has none\"");
	CHECK_HAS(log, "\"variable\":\"PROMPTYARD_TEST_SOME_HOOK\"");
	unsetenv("PROMPTYARD_TEST_SOME_HOOK");
	CHECK(hook_logged(testhook_getenv, "PROMPTYARD_TEST_SOME_HOOK", log, sizeof log) == NULL);
	CHECK_STR(log, "");
	log_set_level(was);
}

/* The printf-free formatters write what printf would. */
TEST(formatters_match_printf)
{
	static const int64_t amounts[] = {0,          1,           10,        999999999,
	                                  1000000000, 1000000001,  123456789, 12500000000,
	                                  -1,         -2500000000, INT64_MAX, -INT64_MAX};
	for (size_t i = 0; i < sizeof amounts / sizeof amounts[0]; i++) {
		int64_t v = amounts[i];
		uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
		char want[48], frac[16], got[48];
		snprintf(frac, sizeof frac, "%09llu", (unsigned long long)(u % 1000000000u));
		size_t n = strlen(frac);
		while (n > 0 && frac[n - 1] == '0')
			frac[--n] = '\0';
		snprintf(want, sizeof want, "%s%llu%s%s", v < 0 ? "-" : "",
		         (unsigned long long)(u / 1000000000u), n ? "." : "", frac);
		money_format_usd(v, got, sizeof got);
		CHECK_STR(got, want);
		struct buf b = {0};
		buf_i64(&b, v);
		snprintf(want, sizeof want, "%lld", (long long)v);
		CHECK_STR(b.data, want);
		buf_free(&b);
	}
	/* Seconds repeated and changed, across a day and a year, before 1970. */
	static const int64_t times[] = {1795316400000,
	                                1795316400999,
	                                1795316400999,
	                                1795316401000,
	                                1798761599999,
	                                1798761600000,
	                                0,
	                                -1,
	                                -86400001,
	                                253402300799999};
	for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
		int64_t ms = times[i];
		time_t secs = (time_t)(ms / 1000);
		int rem = (int)(ms % 1000);
		if (rem < 0) {
			rem += 1000;
			secs--;
		}
		struct tm tm;
		gmtime_r(&secs, &tm);
		char want[48], got[48];
		snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		         tm.tm_sec, rem);
		time_format_rfc3339(ms, got, sizeof got);
		CHECK_STR(got, want);
	}
}

TEST(time_rfc3339)
{
	int64_t ms;
	CHECK_INT(time_parse_rfc3339("2026-11-22T03:00:00Z", &ms), 0);
	CHECK_INT(ms, 1795316400000LL);
	CHECK_INT(time_parse_rfc3339("2026-11-22T04:00:00.5+01:00", &ms), 0);
	CHECK_INT(ms, 1795316400500LL);
	CHECK_INT(time_parse_rfc3339("2026-11-22", &ms), -1);
	CHECK_INT(time_parse_rfc3339("2026-13-22T03:00:00Z", &ms), -1);
	CHECK_INT(time_parse_rfc3339("2026-11-22T03:00:00", &ms), -1);
	char out[40];
	time_format_rfc3339(1795316400123LL, out, sizeof out);
	CHECK_STR(out, "2026-11-22T03:00:00.123Z");
}

/* Dates that do not exist are refused, not carried into the next month
 * (2026-02-31 was read as 2026-03-03). A leap second (:60) is taken only at
 * 23:59 UTC, where leap seconds are inserted, and counts as :59. */
TEST(time_rfc3339_impossible_dates)
{
	int64_t ms, want;
	static const char *const bad[] = {
	        "2026-02-31T00:00:00Z",      "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
	        "2026-04-31T00:00:00Z",      "2026-06-31T00:00:00Z", "2026-09-31T00:00:00Z",
	        "2026-11-31T00:00:00Z",      "2026-01-32T00:00:00Z", "2026-01-00T00:00:00Z",
	        "2026-01-01T24:00:00Z",      "2026-01-01T12:60:00Z", "2026-01-01T12:00:61Z",
	        "2026-06-30T12:00:60Z",      "2026-12-31T23:58:60Z", "2026-12-31T23:59:60+01:00",
	        "2026-12-31T23:59:00+24:00",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (time_parse_rfc3339(bad[i], &ms) == 0)
			UNIT_FAIL("\"%s\" parsed", bad[i]);
	static const char *const good[] = {"2024-02-29T00:00:00Z", "2000-02-29T00:00:00Z",
	                                   "2026-01-31T23:59:59Z", "2026-04-30T00:00:00Z",
	                                   "2026-12-31T23:59:60Z", "2027-01-01T05:29:60+05:30"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		if (time_parse_rfc3339(good[i], &ms) != 0)
			UNIT_FAIL("\"%s\" refused", good[i]);
	CHECK_INT(time_parse_rfc3339("2026-12-31T23:59:60.250Z", &ms), 0);
	CHECK_INT(time_parse_rfc3339("2026-12-31T23:59:59.250Z", &want), 0);
	CHECK_INT(ms, want);
}

TEST(buf_json_escapes)
{
	struct buf b = {0};
	buf_json_str(&b, "a\"b\\c\n\x01\xc3\xa9", 9);
	CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"");
	buf_reset(&b);
	buf_printf(&b, "%d-%s", 42, "x");
	CHECK_STR(b.data, "42-x");
	char *taken = buf_take(&b);
	CHECK_STR(taken, "42-x");
	CHECK(b.data == NULL);
	free(taken);
	buf_free(&b);

	/* Escapes that grow the buffer many times over, after text already in
	 * it: jansson reads back the bytes given. */
	char s[3000];
	for (size_t i = 0; i < sizeof s; i++)
		s[i] = (char)(1 + (i * 37 + i / 7) % 127);
	for (size_t len = 0; len <= sizeof s; len += len < 40 ? 1 : 997) {
		buf_puts(&b, "[1,");
		buf_json_str(&b, s, len);
		buf_puts(&b, "]");
		json_t *back = json_loads(b.data, 0, NULL);
		json_t *str = json_array_get(back, 1);
		CHECK(json_is_string(str) && json_string_length(str) == len &&
		      memcmp(json_string_value(str), s, len) == 0);
		CHECK_INT((long long)strlen(b.data), (long long)b.len);
		json_decref(back);
		buf_free(&b);
	}
}

int main(void)
{
	RUN(money_spec_example);
	RUN(money_cached_and_rounding);
	RUN(money_conversions);
	RUN(money_cost_saturates);
	RUN(money_parse_usd_exact_and_bounded);
	RUN(formatters_match_printf);
	RUN(time_rfc3339);
	RUN(time_rfc3339_impossible_dates);
	RUN(test_hooks_only_in_the_test_build);
	RUN(buf_json_escapes);
	RUN(buf_secret_leaves_no_copy_when_it_grows);
	RUN(buf_printf_leaves_nothing_on_the_stack);
	return unit_done();
}
