/* engine_pools: each provider's HTTP pools, sharded over several curl multi
 * handles when the provider may hold many connections.
 *
 * Each new call makes curl look for a free connection by walking every
 * connection to its host, so a call costs more the more connections one
 * multi handle holds: with 2,000 (make bench a), eight multi handles of 250
 * took a fifth off the worker's CPU per call. This is the one place that
 * knows of the shards; the rest of the engine asks engine_pools_pick() for
 * the pool of a call. */
#include "engine_int.h"

#include "buf.h"

#include <limits.h>
#include <stdlib.h>

#define POOL_CONNECTIONS 256 /* connections per multi handle, at most */
#define POOL_SHARDS_MAX  16

/* One provider's pools. */
struct provider_pools {
	struct http_pool *shard[POOL_SHARDS_MAX];
	int share[POOL_SHARDS_MAX]; /* max_connections of each: they add up to the provider's */
	int n;
};

static int pools_init(uv_loop_t *loop, struct provider_pools *pp, const struct provider_conf *p,
                      int64_t max_response_bytes, char *errstr, size_t errstr_size)
{
	int mc = p->max_connections > 0 ? p->max_connections : 1;
	int n = (mc + POOL_CONNECTIONS - 1) / POOL_CONNECTIONS;
	pp->n = n < POOL_SHARDS_MAX ? n : POOL_SHARDS_MAX;
	for (int k = 0; k < pp->n; k++) {
		pp->share[k] = mc / pp->n + (k < mc % pp->n ? 1 : 0);
		pp->shard[k] = http_pool_new(loop, pp->share[k], (size_t)max_response_bytes, errstr,
		                             errstr_size);
		if (!pp->shard[k])
			return -1;
	}
	return 0;
}

struct provider_pools *engine_pools_new(uv_loop_t *loop, const struct config *cfg, char *errstr,
                                        size_t errstr_size)
{
	struct provider_pools *pools =
	        xcalloc(cfg->n_providers ? cfg->n_providers : 1, sizeof *pools);
	for (size_t i = 0; i < cfg->n_providers; i++) {
		if (pools_init(loop, &pools[i], &cfg->providers[i], cfg->worker.max_response_bytes,
		               errstr, errstr_size) != 0) {
			engine_pools_free(pools, cfg->n_providers);
			return NULL;
		}
	}
	return pools;
}

/* The shard with the most connections to spare: with the engine's slots
 * (calls <= max_connections) one always has room, so curl never queues a
 * call behind a connection. */
struct http_pool *engine_pools_pick(struct provider_pools *pools, int provider)
{
	struct provider_pools *pp = &pools[provider];
	int best = 0, room = INT_MIN;
	for (int k = 0; k < pp->n; k++) {
		int r = pp->share[k] - http_pool_active(pp->shard[k]);
		if (r > room) {
			room = r;
			best = k;
		}
	}
	return pp->shard[best];
}

void engine_pools_free(struct provider_pools *pools, size_t n_providers)
{
	if (!pools)
		return;
	for (size_t i = 0; i < n_providers; i++)
		for (int k = 0; k < pools[i].n; k++)
			http_pool_free(pools[i].shard[k]);
	free(pools);
}
