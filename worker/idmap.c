/* idmap: linear probing with backward-shift deletion (no tombstones), so a
 * map that sees millions of puts and deletes never degrades. */
#include "idmap.h"

#include "buf.h"
#include "siphash.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	const char *key; /* NULL: empty */
	uint64_t hash;
	void *value;
};

struct idmap {
	struct slot *slots;
	size_t mask; /* capacity - 1, a power of two */
	size_t count;
	uint8_t key[SIPHASH_KEY_BYTES]; /* random, the map's own */
};

uint64_t idmap_hash(const struct idmap *m, const char *key)
{
	return siphash24(m->key, key, strlen(key));
}

struct idmap *idmap_new(void)
{
	struct idmap *m = xcalloc(1, sizeof *m);
	siphash_random_key(m->key);
	m->mask = 63;
	m->slots = xcalloc(m->mask + 1, sizeof *m->slots);
	return m;
}

void idmap_free(struct idmap *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m);
}

static size_t find(const struct idmap *m, const char *key, uint64_t h)
{
	size_t i = h & m->mask;
	while (m->slots[i].key && (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
		i = (i + 1) & m->mask;
	return i;
}

void *idmap_get(const struct idmap *m, const char *key)
{
	size_t i = find(m, key, idmap_hash(m, key));
	return m->slots[i].key ? m->slots[i].value : NULL;
}

static void grow(struct idmap *m)
{
	struct slot *old = m->slots;
	size_t old_cap = m->mask + 1;
	m->mask = old_cap * 2 - 1;
	m->slots = xcalloc(m->mask + 1, sizeof *m->slots);
	for (size_t i = 0; i < old_cap; i++) {
		if (!old[i].key)
			continue;
		size_t j = old[i].hash & m->mask;
		while (m->slots[j].key)
			j = (j + 1) & m->mask;
		m->slots[j] = old[i];
	}
	free(old);
}

void idmap_put(struct idmap *m, const char *key, void *value)
{
	if ((m->count + 1) * 4 > (m->mask + 1) * 3)
		grow(m);
	uint64_t h = idmap_hash(m, key);
	size_t i = find(m, key, h);
	if (!m->slots[i].key) {
		m->slots[i].key = key;
		m->slots[i].hash = h;
		m->count++;
	}
	m->slots[i].value = value;
}

void idmap_del(struct idmap *m, const char *key)
{
	size_t i = find(m, key, idmap_hash(m, key));
	if (!m->slots[i].key)
		return;
	m->count--;
	/* Shift back the entries of the run that follows, so lookups never stop
	 * at the hole. */
	size_t j = i;
	for (;;) {
		m->slots[i].key = NULL;
		for (;;) {
			j = (j + 1) & m->mask;
			if (!m->slots[j].key)
				return;
			size_t home = m->slots[j].hash & m->mask;
			/* Stay if home lies cyclically in (i, j]. */
			if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
				continue;
			break;
		}
		m->slots[i] = m->slots[j];
		i = j;
	}
}

size_t idmap_count(const struct idmap *m)
{
	return m->count;
}
