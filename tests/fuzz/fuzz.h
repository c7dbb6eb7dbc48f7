/* fuzz: what every libFuzzer target of tests/fuzz/ shares.
 *
 * A target is one file tests/fuzz/fuzz_<name>.c that defines
 * LLVMFuzzerTestOneInput (and LLVMFuzzerInitialize when it needs a config);
 * `make fuzz` builds it with clang's -fsanitize=fuzzer,address,undefined and
 * runs it on a copy of tests/fuzz/corpus/<name>/ (tests/fuzz/README in the
 * README's "Fuzzing" section). Besides what the sanitizers catch, a target
 * checks the contracts of the code it drives with FUZZ_CHECK: a broken
 * contract aborts, which libFuzzer reports as a crash with its input. */
#ifndef PROMPTYARD_FUZZ_H
#define PROMPTYARD_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FUZZ_CHECK failed: %s:%d: %s\n", __FILE__, __LINE__,      \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Is s[0..len) well-formed UTF-8 (buf.h's utf8_seq_len, RFC 3629)? */
bool fuzz_utf8_valid(const char *s, size_t len);

/* Does text hold something that reads as an API key ("sk-" or "AIza" at the
 * start of a word, then 8 or more key characters): what provider_set_error
 * must have redacted? */
bool fuzz_has_key(const char *text);

/* Loads a config file (relative paths from the repository root, where make
 * and tests/run.py run the targets) or exits 1 with the reason: a target
 * without its config must not pass as if it had fuzzed. Never freed. */
struct config;
const struct config *fuzz_load_config(const char *path);

#endif
