/* provider_registry: which wire formats there are, by the config's provider
 * type ("openai", "anthropic", "gemini", "bedrock").
 *
 * It depends on no other module: config checks a provider's type here,
 * while the formats' tables (provider.h) are built on config's types, so
 * the registry sees the tables only as addresses. Adding a wire format is
 * adding its file (provider_<type>.c, exporting a struct provider) and its
 * line here and in provider_registry.c. */
#ifndef PROMPTYARD_PROVIDER_REGISTRY_H
#define PROMPTYARD_PROVIDER_REGISTRY_H

struct provider; /* provider.h */

/* Every wire format's table (static, defined in its provider_<type>.c). */
extern const struct provider provider_openai;
extern const struct provider provider_anthropic;
extern const struct provider provider_gemini;
extern const struct provider provider_bedrock;

/* The table for a config's provider type (borrowed, static), or NULL for an
 * unknown type or NULL. */
const struct provider *provider_lookup(const char *type);

#endif
