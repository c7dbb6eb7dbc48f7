/* fuzz_provider_openai: an HTTP answer (status and body) through
 * provider_openai.parse_response; see provider_answer.h. */
#include "fuzz.h"
#include "provider_answer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_provider_answer(&provider_openai, data, size);
}
