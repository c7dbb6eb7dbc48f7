/* provider_registry: the wire formats by type name (see provider_registry.h). */
#include "provider_registry.h"

#include <stddef.h>
#include <string.h>

/* Every wire format, one line each. The name is the table's type as well
 * (struct provider.type; test_providers checks that they agree). */
static const struct {
	const char *type;
	const struct provider *ops;
} formats[] = {
        {"openai", &provider_openai},
        {"anthropic", &provider_anthropic},
        {"gemini", &provider_gemini},
        {"bedrock", &provider_bedrock},
};

const struct provider *provider_lookup(const char *type)
{
	if (!type)
		return NULL;
	for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
		if (strcmp(formats[i].type, type) == 0)
			return formats[i].ops;
	return NULL;
}
