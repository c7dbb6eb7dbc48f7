/* engine_pools: one HTTP pool per provider, made from its configuration.
 *
 * A pool (http.c) holds the provider's connections, spread over as many curl
 * multi handles as its max_connections need, and says how many calls it can
 * take at once (http_pool_capacity: its connections, times the streams of
 * HTTP/2 once the server answered over it). The attempt cycle keeps its
 * calls under that (engine_attempt.c's provider slots). */
#include "engine_int.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>

struct http_pool **engine_pools_new(uv_loop_t *loop, const struct config *cfg, char *errstr,
                                    size_t errstr_size)
{
	struct http_pool **pools = xcalloc(cfg->n_providers ? cfg->n_providers : 1, sizeof *pools);
	for (size_t i = 0; i < cfg->n_providers; i++) {
		const struct provider_conf *p = &cfg->providers[i];
		struct http_pool_options opt = {
		        .max_connections = p->max_connections,
		        .max_body_bytes = (size_t)cfg->worker.max_response_bytes,
		        .ca_file = p->ca_file,
		        .tls = strncmp(p->base_url, "https://", 8) == 0,
		};
		pools[i] = http_pool_new(loop, &opt, errstr, errstr_size);
		if (!pools[i]) {
			engine_pools_free(pools, cfg->n_providers);
			return NULL;
		}
	}
	return pools;
}

void engine_pools_free(struct http_pool **pools, size_t n_providers)
{
	if (!pools)
		return;
	for (size_t i = 0; i < n_providers; i++)
		http_pool_free(pools[i]);
	free(pools);
}
