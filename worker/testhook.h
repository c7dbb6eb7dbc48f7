/* testhook: fault-injection switches read from the environment, for tests
 * only (README, Tests):
 *   PROMPTYARD_TEST_FATAL_PRODUCER_AFTER=N  a fatal producer error after N
 *                                           delivery reports (kafka.c)
 *   PROMPTYARD_CLOCK_OFFSET_MS=MS           the wall clock shifted (timeutil.c)
 *   PROMPTYARD_TEST_RATE_PERIOD_MS=MS       a shorter "minute" for rpm/tpm
 *
 * They exist only in a build with PROMPTYARD_TEST_HOOKS defined: the
 * sanitizer build (make SAN=1, which make test runs). There each one that is
 * set is logged as a warning when read; a release build logs it as ignored
 * and goes on as if it were not set. */
#ifndef PROMPTYARD_TESTHOOK_H
#define PROMPTYARD_TESTHOOK_H

/* The value of the hook variable name (borrowed from the environment), or
 * NULL when it is unset or this build has no test hooks. */
const char *testhook_getenv(const char *name);

#endif
