/* fuzz_provider_bedrock: an HTTP answer (status and body) through
 * provider_bedrock.parse_response (Bedrock Converse); see provider_answer.h. */
#include "fuzz.h"
#include "provider_answer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_provider_answer(&provider_bedrock, data, size);
}
