/* provider_answer: the body of the four provider targets
 * (fuzz_provider_openai.c, fuzz_provider_anthropic.c, fuzz_provider_gemini.c,
 * fuzz_provider_bedrock.c).
 *
 * An input is an HTTP answer: its first three bytes are the status, read as
 * decimal digits with each byte taken modulo 10 ("200{...}", "429{...}"), so
 * that every input has one and error paths, 1xx, 3xx and the statuses past
 * 599 are fuzzed as well as 2xx; the rest is the body. */
#ifndef PROMPTYARD_FUZZ_PROVIDER_ANSWER_H
#define PROMPTYARD_FUZZ_PROVIDER_ANSWER_H

#include "provider.h"

/* Parses data as an answer to p and checks provider.h's contract of
 * parse_response. Returns 0 (libFuzzer's "keep going"). */
int fuzz_provider_answer(const struct provider *p, const uint8_t *data, size_t size);

#endif
