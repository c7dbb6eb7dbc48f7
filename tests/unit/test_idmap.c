/* Unit tests of the id map, against a plain array as the model. */
#include "idmap.h"
#include "siphash.h"
#include "unit.h"

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
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

/* SipHash-2-4 against the reference implementation's 64 vectors
 * (vectors_sip64 of the SipHash paper's C code, which OpenSSL 3's SIPHASH
 * MAC gives too): key 00 01 .. 0f, message 00 01 .. (i - 1) for i = 0 .. 63,
 * so every length of the last partial block and eight block boundaries. */
TEST(siphash_reference_vectors)
{
	static const uint64_t want[64] = {
	        UINT64_C(0x726fdb47dd0e0e31), UINT64_C(0x74f839c593dc67fd),
	        UINT64_C(0x0d6c8009d9a94f5a), UINT64_C(0x85676696d7fb7e2d),
	        UINT64_C(0xcf2794e0277187b7), UINT64_C(0x18765564cd99a68d),
	        UINT64_C(0xcbc9466e58fee3ce), UINT64_C(0xab0200f58b01d137),
	        UINT64_C(0x93f5f5799a932462), UINT64_C(0x9e0082df0ba9e4b0),
	        UINT64_C(0x7a5dbbc594ddb9f3), UINT64_C(0xf4b32f46226bada7),
	        UINT64_C(0x751e8fbc860ee5fb), UINT64_C(0x14ea5627c0843d90),
	        UINT64_C(0xf723ca908e7af2ee), UINT64_C(0xa129ca6149be45e5),
	        UINT64_C(0x3f2acc7f57c29bdb), UINT64_C(0x699ae9f52cbe4794),
	        UINT64_C(0x4bc1b3f0968dd39c), UINT64_C(0xbb6dc91da77961bd),
	        UINT64_C(0xbed65cf21aa2ee98), UINT64_C(0xd0f2cbb02e3b67c7),
	        UINT64_C(0x93536795e3a33e88), UINT64_C(0xa80c038ccd5ccec8),
	        UINT64_C(0xb8ad50c6f649af94), UINT64_C(0xbce192de8a85b8ea),
	        UINT64_C(0x17d835b85bbb15f3), UINT64_C(0x2f2e6163076bcfad),
	        UINT64_C(0xde4daaaca71dc9a5), UINT64_C(0xa6a2506687956571),
	        UINT64_C(0xad87a3535c49ef28), UINT64_C(0x32d892fad841c342),
	        UINT64_C(0x7127512f72f27cce), UINT64_C(0xa7f32346f95978e3),
	        UINT64_C(0x12e0b01abb051238), UINT64_C(0x15e034d40fa197ae),
	        UINT64_C(0x314dffbe0815a3b4), UINT64_C(0x027990f029623981),
	        UINT64_C(0xcadcd4e59ef40c4d), UINT64_C(0x9abfd8766a33735c),
	        UINT64_C(0x0e3ea96b5304a7d0), UINT64_C(0xad0c42d6fc585992),
	        UINT64_C(0x187306c89bc215a9), UINT64_C(0xd4a60abcf3792b95),
	        UINT64_C(0xf935451de4f21df2), UINT64_C(0xa9538f0419755787),
	        UINT64_C(0xdb9acddff56ca510), UINT64_C(0xd06c98cd5c0975eb),
	        UINT64_C(0xe612a3cb9ecba951), UINT64_C(0xc766e62cfcadaf96),
	        UINT64_C(0xee64435a9752fe72), UINT64_C(0xa192d576b245165a),
	        UINT64_C(0x0a8787bf8ecb74b2), UINT64_C(0x81b3e73d20b49b6f),
	        UINT64_C(0x7fa8220ba3b2ecea), UINT64_C(0x245731c13ca42499),
	        UINT64_C(0xb78dbfaf3a8d83bd), UINT64_C(0xea1ad565322a1a0b),
	        UINT64_C(0x60e61c23a3795013), UINT64_C(0x6606d7e446282b93),
	        UINT64_C(0x6ca4ecb15c5f91e1), UINT64_C(0x9f626da15c9625f3),
	        UINT64_C(0xe51b38608ef25f57), UINT64_C(0x958a324ceb064572),
	};
	uint8_t key[SIPHASH_KEY_BYTES], msg[64];
	for (int i = 0; i < SIPHASH_KEY_BYTES; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++) {
		msg[i] = (uint8_t)i;
		uint64_t got = siphash24(key, msg, (size_t)i);
		if (got != want[i])
			UNIT_FAIL("length %d: %016" PRIx64 ", expected %016" PRIx64, i, got,
			          want[i]);
	}
}

/* SipHash-2-4 of OpenSSL 3 (its SIPHASH MAC, 8 bytes, least significant
 * first), an implementation written apart from this one. */
static uint64_t openssl_siphash24(const uint8_t key[SIPHASH_KEY_BYTES], const void *data,
                                  size_t len)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	size_t size = 8, got = 0;
	OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
	                       OSSL_PARAM_construct_end()};
	unsigned char out[8] = {0};
	uint64_t v = 0;
	if (!ctx || !EVP_MAC_init(ctx, key, SIPHASH_KEY_BYTES, params) ||
	    !EVP_MAC_update(ctx, data, len) || !EVP_MAC_final(ctx, out, &got, sizeof out) ||
	    got != 8)
		UNIT_FAIL("OpenSSL's SIPHASH failed");
	for (int i = 7; i >= 0; i--)
		v = v << 8 | out[i];
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return v;
}

/* 2,000 random keys and messages of 0 to 99 bytes give what OpenSSL gives. */
TEST(siphash_matches_openssl)
{
	uint8_t key[SIPHASH_KEY_BYTES], msg[100];
	uint32_t seed = 2718281;
	int differ = 0;
	for (int n = 0; n < 2000; n++) {
		for (size_t i = 0; i < sizeof key; i++)
			key[i] = (uint8_t)((seed = seed * 1103515245u + 12345u) >> 16);
		size_t len = (size_t)n % sizeof msg;
		for (size_t i = 0; i < len; i++)
			msg[i] = (uint8_t)((seed = seed * 1103515245u + 12345u) >> 16);
		differ += siphash24(key, msg, len) != openssl_siphash24(key, msg, len);
	}
	CHECK_INT(differ, 0);
}

/* The unseeded FNV-1a idmap used, which anyone can compute offline. */
static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603u;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211u;
	}
	return h ^ (h >> 29);
}

/* A producer who picks ids that shared one slot of a 256-slot table under
 * the old hash (256 of them, found by trying about 65,000 names) no longer
 * gets a run of 256 slots: under the map's keyed hash they spread as random
 * ones do (about 162 distinct slots of 256 expected; fewer than 128 happens
 * with a probability far below 1e-9). Two maps hash with different keys. */
TEST(chosen_ids_spread)
{
	enum { N = 256 };
	static char ids[N][24];
	int n = 0;
	uint64_t target = fnv1a("flood-0") & (N - 1);
	for (unsigned i = 0; n < N && i < 10000000; i++) {
		char id[24];
		snprintf(id, sizeof id, "flood-%u", i);
		if ((fnv1a(id) & (N - 1)) == target)
			memcpy(ids[n++], id, sizeof id);
	}
	CHECK_INT(n, N);
	struct idmap *m = idmap_new(), *other = idmap_new();
	static bool used[N];
	int distinct = 0;
	for (int i = 0; i < n; i++) {
		size_t slot = (size_t)(idmap_hash(m, ids[i]) & (N - 1));
		distinct += !used[slot];
		used[slot] = true;
		idmap_put(m, ids[i], ids[i]);
	}
	if (distinct < 128)
		UNIT_FAIL("256 chosen ids fill %d slots of 256", distinct);
	for (int i = 0; i < n; i++)
		CHECK(idmap_get(m, ids[i]) == ids[i]);
	CHECK(idmap_hash(m, "job-1") != idmap_hash(other, "job-1"));
	idmap_free(m);
	idmap_free(other);
}

int main(void)
{
	RUN(put_get_del);
	RUN(churn_matches_model);
	RUN(siphash_reference_vectors);
	RUN(siphash_matches_openssl);
	RUN(chosen_ids_spread);
	return unit_done();
}
