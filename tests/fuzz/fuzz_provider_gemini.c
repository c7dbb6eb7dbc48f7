/* fuzz_provider_gemini: an HTTP answer (status and body) through
 * provider_gemini.parse_response; see provider_answer.h. */
#include "fuzz.h"
#include "provider_answer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_provider_answer(&provider_gemini, data, size);
}
