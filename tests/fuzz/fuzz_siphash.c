/* libFuzzer target of siphash (STYLE: what is hand-written has one).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Iworker \
 *         tests/fuzz/fuzz_siphash.c worker/siphash.c -lcrypto -o build/fuzz_siphash
 *   build/fuzz_siphash -max_total_time=60
 *
 * The first 16 bytes of the input are the key (zeros when shorter), the rest
 * the message. siphash24 must read nothing outside it and agree with OpenSSL
 * 3's SIPHASH MAC (8 bytes, least significant first). */
#include "siphash.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t key[SIPHASH_KEY_BYTES] = {0};
	size_t k = size < sizeof key ? size : sizeof key;
	memcpy(key, data, k);
	/* The message in a block of its own size, so that a read past it is seen. */
	uint8_t *msg = malloc(size - k + 1);
	memcpy(msg, data + k, size - k);
	uint64_t got = siphash24(key, msg, size - k);

	EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
	size_t out_size = 8, n = 0;
	OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &out_size),
	                       OSSL_PARAM_construct_end()};
	unsigned char out[8];
	if (!EVP_MAC_init(ctx, key, sizeof key, params) || !EVP_MAC_update(ctx, msg, size - k) ||
	    !EVP_MAC_final(ctx, out, &n, sizeof out) || n != 8)
		abort();
	uint64_t want = 0;
	for (int i = 7; i >= 0; i--)
		want = want << 8 | out[i];
	if (got != want)
		abort();
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	free(msg);
	return 0;
}
