/* libFuzzer target of the batch parsers (provider_batch.h): result lines,
 * Gemini's inline answers, statuses and lists, in the three formats.
 *
 *   P="rdkafka libcurl jansson hiredis libconfig libuv libmicrohttpd libcrypto"
 *   F="-std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=address,undefined $(pkg-config --cflags $P) -Iworker"
 *   for f in worker/[a-z]*.c; do [ $f = worker/main.c ] ||
 *       clang $F -fsanitize=fuzzer-no-link -c $f -o build/fuzz-$(basename $f .c).o; done
 *   sh tests/tools/embed_lua.sh worker/[a-z]*.lua > build/fuzz-lua.c
 *   clang $F -c build/fuzz-lua.c -o build/fuzz-lua.o
 *   clang $F -fsanitize=fuzzer tests/fuzz/fuzz_batch_lines.c build/fuzz-*.o \
 *         $(pkg-config --libs $P) -lm -o build/fuzz_batch_lines
 *   cp -r tests/fuzz/corpus/batch_lines build/corpus   # libFuzzer adds to it
 *   build/fuzz_batch_lines -max_total_time=60 build/corpus
 *
 * (or `make fuzz`, which builds every tests/fuzz/fuzz_*.c, once the fuzz
 * workstream's rule is in the Makefile.)
 *
 * The first byte picks the format (modulo 3: openai, anthropic, gemini),
 * the second what is parsed (modulo 4: a result line, a status, a list, a
 * status whose inline answers are walked); for the last three, the next
 * three bytes are the HTTP status (each byte modulo 10, as decimal digits),
 * so that error answers are fuzzed too. The rest is the body or the line.
 * Whatever it is, nothing crashes or leaks, and what comes out keeps the
 * contracts of provider_batch.h: an outcome of the enum, no usage for a
 * request that did not run, an error message for every failure, one no
 * longer than PROVIDER_ERROR_MAX, results only on the provider's host. */
#include "provider_batch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE "http://provider.test/v1"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "check failed: %s:%d: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_message(const char *msg)
{
	CHECK(msg != NULL);
	CHECK(strlen(msg) <= PROVIDER_ERROR_MAX);
}

static void check_result(const struct provider_batch_result *r)
{
	CHECK((unsigned)r->outcome <= BATCH_LINE_INVALID);
	if (r->outcome == BATCH_LINE_BLANK)
		return;
	if (r->outcome != BATCH_LINE_ANSWERED) {
		CHECK(!r->c.has_usage && !r->c.content && r->cls != RESPONSE_OK);
		check_message(r->c.error_message);
		return;
	}
	if (r->cls == RESPONSE_OK)
		CHECK(r->c.content != NULL && r->c.error_message == NULL);
	else
		check_message(r->c.error_message);
}

static void check_status(const struct provider_batch_status *st, enum response_class cls)
{
	if (cls != RESPONSE_OK) {
		check_message(st->error_message);
		return;
	}
	CHECK(st->id != NULL && (unsigned)st->state <= BATCH_CANCELED);
	CHECK(st->n_results <= 2);
	CHECK(strlen(st->token) == 0 || provider_batch_token_valid(st->token, strlen(st->token)));
	for (size_t i = 0; i < st->n_results; i++)
		CHECK(strncmp(st->results[i], "http://provider.test/", 21) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct provider *const formats[] = {&provider_openai, &provider_anthropic,
	                                                 &provider_gemini};
	struct model_conf m = {.name = "m", .id = "m", .default_max_tokens = 1024};
	struct provider_conf p = {.name = "p", .base_url = BASE, .api_key = "sk-test-123"};
	struct provider_batch_result r = {0};
	struct provider_batch_status st = {0};
	struct provider_batch_list l = {0};
	struct provider_batch_inline it;
	long status = 200;

	if (size < 2)
		return 0;
	p.ops = formats[data[0] % 3];
	p.type = (char *)p.ops->type;
	int what = data[1] % 4;
	data += 2;
	size -= 2;
	if (what > 0) {
		if (size < 3)
			return 0;
		status = (data[0] % 10) * 100 + (data[1] % 10) * 10 + data[2] % 10;
		data += 3;
		size -= 3;
	}
	/* Its own allocation, so that ASan sees any read past the end. */
	char *body = malloc(size ? size : 1);
	if (!body)
		return 0;
	memcpy(body, data, size);

	switch (what) {
	case 0:
		provider_batch_parse_result(&p, &m, body, size, &r);
		check_result(&r);
		break;
	case 1: check_status(&st, provider_batch_parse_status(&p, status, body, size, &st)); break;
	case 2: {
		enum response_class cls = provider_batch_parse_list(&p, status, body, size, &l);
		if (cls != RESPONSE_OK)
			check_message(l.error_message);
		for (size_t i = 0; i < l.n; i++)
			check_status(&l.items[i], RESPONSE_OK);
		CHECK(!l.next || *l.next);
		break;
	}
	default: {
		size_t n = provider_batch_inline_open(&it, &p, body, size), i = 0;
		for (; provider_batch_inline_next(&it, &m, &r); i++) {
			CHECK(r.position == (int64_t)i);
			check_result(&r);
		}
		CHECK(i == n);
		provider_batch_inline_close(&it);
		break;
	}
	}
	provider_batch_result_clear(&r);
	provider_batch_status_clear(&st);
	provider_batch_list_clear(&l);
	free(body);
	return 0;
}
