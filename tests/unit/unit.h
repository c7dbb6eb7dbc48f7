/* unit: the smallest test harness that does the job.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_STR(a, "b"); CHECK_INT(n, 3); }
 *   int main(void) { RUN(name); return unit_done(); }
 *
 * Prints "PASS name" or "FAIL name: file:line: what" per test and, last,
 * "N passed, N failed"; the exit status is 1 when anything failed. */
#ifndef PROMPTYARD_UNIT_H
#define PROMPTYARD_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int unit_passed, unit_failed, unit_cur_failed;
static const char *unit_cur;

#define TEST(name) static void name(void)

#define UNIT_FAIL(...)                                                                             \
	do {                                                                                       \
		if (!unit_cur_failed)                                                              \
			printf("FAIL %s: ", unit_cur);                                             \
		else                                                                               \
			printf("     %s: ", unit_cur);                                             \
		printf("%s:%d: ", __FILE__, __LINE__);                                             \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
		unit_cur_failed = 1;                                                               \
	} while (0)

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			UNIT_FAIL("%s", #cond);                                                    \
	} while (0)

#define CHECK_INT(a, b)                                                                            \
	do {                                                                                       \
		int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                      \
		if (a_ != b_)                                                                      \
			UNIT_FAIL("%s == %" PRId64 ", expected %" PRId64, #a, a_, b_);             \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *a_ = (a), *b_ = (b);                                                   \
		if (!a_ || !b_ || strcmp(a_, b_) != 0)                                             \
			UNIT_FAIL("%s == \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)",         \
			          b_ ? b_ : "(null)");                                             \
	} while (0)

/* The haystack contains the needle. */
#define CHECK_HAS(hay, needle)                                                                     \
	do {                                                                                       \
		const char *h_ = (hay), *n_ = (needle);                                            \
		if (!h_ || !strstr(h_, n_))                                                        \
			UNIT_FAIL("%s (\"%s\") lacks \"%s\"", #hay, h_ ? h_ : "(null)", n_);       \
	} while (0)

#define RUN(name)                                                                                  \
	do {                                                                                       \
		unit_cur = #name;                                                                  \
		unit_cur_failed = 0;                                                               \
		name();                                                                            \
		if (unit_cur_failed)                                                               \
			unit_failed++;                                                             \
		else {                                                                             \
			unit_passed++;                                                             \
			printf("PASS %s\n", #name);                                                \
		}                                                                                  \
		fflush(stdout);                                                                    \
	} while (0)

/* Finds a file of the source tree: $PROMPTYARD_SRCDIR, the tree this file was
 * compiled from, or the working directory and its parents. */
static inline const char *unit_src_path(const char *rel)
{
	static char path[1024];
	const char *env = getenv("PROMPTYARD_SRCDIR");
	const char *self = __FILE__, *tail = "tests/unit/unit.h";
	size_t n = strlen(self), t = strlen(tail);

	if (env) {
		snprintf(path, sizeof path, "%s/%s", env, rel);
		if (access(path, R_OK) == 0)
			return path;
	}
	if (n >= t && strcmp(self + n - t, tail) == 0) {
		snprintf(path, sizeof path, "%.*s%s", (int)(n - t), self, rel);
		if (access(path, R_OK) == 0)
			return path;
	}
	for (size_t i = 0; i < 3; i++) {
		static const char *const up[] = {"", "../", "../../"};
		snprintf(path, sizeof path, "%s%s", up[i], rel);
		if (access(path, R_OK) == 0)
			return path;
	}
	return NULL;
}

static inline int unit_done(void)
{
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#endif
