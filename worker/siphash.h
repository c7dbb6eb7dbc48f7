/* siphash: SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input
 * PRF", 2012), a 64-bit hash keyed with 16 secret bytes. Without the key
 * nobody can choose inputs that collide, so a hash table of keys that others
 * choose (job ids come from producers) cannot be flooded into one chain. */
#ifndef PROMPTYARD_SIPHASH_H
#define PROMPTYARD_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_BYTES 16

uint64_t siphash24(const uint8_t key[SIPHASH_KEY_BYTES], const void *data, size_t len);

/* Fills key from the kernel's random source (getrandom); where that fails,
 * from the clock, the process id and addresses, which are weaker. */
void siphash_random_key(uint8_t key[SIPHASH_KEY_BYTES]);

#endif
