/* promptyard-worker: takes LLM jobs from Kafka, routes them under a budget,
 * calls the providers and publishes results, cost records and DLQ records.
 *
 *   promptyard-worker -c FILE [--brokers LIST] [--redis HOST:PORT] [--log-level L]
 *
 * Exit status: 0 success, 1 runtime failure, 2 usage or configuration error. */
#include "buf.h"
#include "config.h"
#include "engine.h"
#include "http.h"
#include "log.h"
#include "testhook.h"
#include "timeutil.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static void usage(FILE *out)
{
	fputs("usage: promptyard-worker -c FILE [--brokers LIST] [--redis HOST:PORT]"
	      " [--log-level debug|info|warn|error]\n",
	      out);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"brokers", required_argument, NULL, 'b'},
	        {"redis", required_argument, NULL, 'r'},
	        {"log-level", required_argument, NULL, 'l'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *brokers = NULL, *redis = NULL, *level = NULL;
	int c, rc = 1;
	char err[1024];
	struct config *cfg = NULL;
	struct engine *e = NULL;
	uv_loop_t loop;

	log_set_component("worker");
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'b': brokers = optarg; break;
		case 'r': redis = optarg; break;
		case 'l': level = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return 2;
	}
	cfg = config_load(path, CONFIG_REQUIRE_KEYS, err, sizeof err);
	if (!cfg) {
		fprintf(stderr, "promptyard-worker: %s\n", err);
		return 2;
	}
	if (brokers) {
		free(cfg->kafka.brokers);
		cfg->kafka.brokers = xstrdup(brokers);
	}
	if (redis && config_override_redis(cfg, redis) != 0) {
		fprintf(stderr, "promptyard-worker: --redis: expected HOST:PORT, got \"%s\"\n",
		        redis);
		config_free(cfg);
		return 2;
	}
	enum log_level ll;
	if (log_level_parse(level ? level : cfg->worker.log_level, &ll) != 0) {
		fprintf(stderr, "promptyard-worker: --log-level: unknown level \"%s\"\n", level);
		config_free(cfg);
		return 2;
	}
	log_set_level(ll);
	/* Test hook (README, Tests): the wall clock shifted, before the engine
	 * reads it. */
	const char *offset = testhook_getenv("PROMPTYARD_CLOCK_OFFSET_MS");
	if (offset)
		time_set_offset_ms(strtoll(offset, NULL, 10));

	if (http_global_init() != 0) {
		fprintf(stderr, "promptyard-worker: libcurl initialisation failed\n");
		config_free(cfg);
		return 1;
	}
	uv_loop_init(&loop);
	e = engine_new(&loop, cfg, err, sizeof err);
	if (!e) {
		fprintf(stderr, "promptyard-worker: %s\n", err);
		goto out;
	}
	if (engine_start(e, err, sizeof err) != 0) {
		fprintf(stderr, "promptyard-worker: %s\n", err);
		engine_stop(e);
		uv_run(&loop, UV_RUN_DEFAULT);
		goto out;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	rc = engine_exit_code(e);
out:
	/* Let libuv finish closing whatever was closed last. */
	uv_run(&loop, UV_RUN_DEFAULT);
	engine_free(e);
	if (uv_loop_close(&loop) != 0)
		log_debug("loop closed with handles open", NULL);
	http_global_cleanup();
	config_free(cfg);
	return rc;
}
