/* idmap: a hash map from strings (borrowed) to pointers, open addressing.
 *
 * Used for the ids of the jobs in flight. Keys are not copied: a key must stay
 * valid while it is in the map (the task owning it removes it first). Ids are
 * chosen by producers, so keys are hashed with SipHash-2-4 under a random key
 * of the map's own: nobody can choose ids that pile up in one run of slots. */
#ifndef PROMPTYARD_IDMAP_H
#define PROMPTYARD_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap;

struct idmap *idmap_new(void);
void idmap_free(struct idmap *m);
/* The value of key, or NULL. */
void *idmap_get(const struct idmap *m, const char *key);
/* Sets key to value (not NULL), replacing any value. */
void idmap_put(struct idmap *m, const char *key, void *value);
/* Removes key if present. */
void idmap_del(struct idmap *m, const char *key);
size_t idmap_count(const struct idmap *m);
/* The hash of key in m (its slot is the hash modulo the capacity). */
uint64_t idmap_hash(const struct idmap *m, const char *key);

#endif
