/* Unit tests of the id map, against a plain array as the model. */
#include "idmap.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

TEST(put_get_del)
{
	struct idmap *m = idmap_new();
	int a = 1, b = 2;
	idmap_put(m, "job-1", &a);
	idmap_put(m, "job-2", &b);
	CHECK(idmap_get(m, "job-1") == &a);
	CHECK(idmap_get(m, "job-2") == &b);
	CHECK(idmap_get(m, "job-3") == NULL);
	idmap_put(m, "job-1", &b);
	CHECK(idmap_get(m, "job-1") == &b);
	CHECK_INT(idmap_count(m), 2);
	idmap_del(m, "job-1");
	CHECK(idmap_get(m, "job-1") == NULL);
	CHECK(idmap_get(m, "job-2") == &b);
	idmap_del(m, "nope");
	CHECK_INT(idmap_count(m), 1);
	idmap_free(m);
}

TEST(churn_matches_model)
{
	enum { N = 5000 };
	static char keys[N][16];
	static int present[N];
	struct idmap *m = idmap_new();
	unsigned seed = 7;
	for (int i = 0; i < N; i++)
		snprintf(keys[i], sizeof keys[i], "k%d", i);
	for (int step = 0; step < 200000; step++) {
		seed = seed * 1103515245u + 12345u;
		int k = (int)((seed >> 8) % N);
		if ((seed >> 4) & 1) {
			idmap_put(m, keys[k], keys[k]);
			present[k] = 1;
		} else {
			idmap_del(m, keys[k]);
			present[k] = 0;
		}
	}
	size_t count = 0;
	int wrong = 0;
	for (int i = 0; i < N; i++) {
		count += (size_t)present[i];
		void *v = idmap_get(m, keys[i]);
		if (present[i] ? v != keys[i] : v != NULL)
			wrong++;
	}
	CHECK_INT(wrong, 0);
	CHECK_INT(idmap_count(m), count);
	idmap_free(m);
}

int main(void)
{
	RUN(put_get_del);
	RUN(churn_matches_model);
	return unit_done();
}
