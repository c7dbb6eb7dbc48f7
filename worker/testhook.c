/* testhook: test-only switches, compiled in only with PROMPTYARD_TEST_HOOKS. */
#include "testhook.h"

#include "log.h"

#include <stdlib.h>

const char *testhook_getenv(const char *name)
{
	const char *v = getenv(name);
	if (!v)
		return NULL;
#ifdef PROMPTYARD_TEST_HOOKS
	log_warn("test hook set: this process is being tested", "variable", name, "value", v, NULL);
	return v;
#else
	log_warn("test hook ignored: a release build has none", "variable", name, NULL);
	return NULL;
#endif
}
