/* http_floor: what the worker's HTTP layer costs on its own (make bench b).
 *
 *   http_floor --config FILE --model NAME --job JSON --calls N --in-flight K
 *              [--http 2|1.1]   (the HTTP version asked for over TLS; default the pool's)
 *
 * Decodes the job as the worker does, builds its request with the model's
 * provider adapter, and sends it N times through one http_pool of the
 * provider's max_connections and ca_file, K at a time (at most the pool's
 * capacity, as the engine's slots allow), on a libuv loop: the engine's
 * shape. The worker's transport with no Kafka, no Redis, no routing and no
 * outputs. It prints one line of JSON: calls, failures (any transfer error or non-2xx status), and
 * this process's CPU per call (user, sys) from the first call to the last
 * answer. The bench sets it beside the worker's CPU per job, so the share of
 * a job that is the HTTP client alone is a measured figure.
 *
 * The API key comes from the environment variable the config names, as for
 * the worker; it is never printed. */
#include "config.h"
#include "http.h"
#include "job.h"
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

struct floor_run {
	uv_loop_t *loop;
	struct http_pool *pool;
	const struct provider *prov;
	const struct provider_conf *pconf;
	const struct model_conf *model;
	const struct job *job;
	long calls, in_flight, started, answered, failures;
	long by_error[HTTP_OTHER_ERROR + 1]; /* failures by enum http_error */
	long last_status;                    /* of the last non-2xx answer */
};

static void start_one(struct floor_run *r);

/* Starts calls while fewer than in_flight are under way and the pool has
 * room: the engine hands curl at most the pool's capacity (its slots), as
 * curl's own queue of transfers waiting for a connection would double the
 * CPU per call; the capacity grows once HTTP/2 is found. */
static void fill(struct floor_run *r)
{
	while (r->started < r->calls) {
		long under_way = r->started - r->answered;
		if (under_way >= r->in_flight || under_way >= http_pool_capacity(r->pool))
			break;
		start_one(r);
	}
}

static void on_done(void *opaque, const struct http_response *resp)
{
	struct floor_run *r = opaque;
	r->answered++;
	if (resp->error != HTTP_OK || resp->status < 200 || resp->status > 299) {
		r->failures++;
		r->by_error[resp->error]++;
		if (resp->error == HTTP_OK)
			r->last_status = resp->status;
	}
	fill(r);
	if (r->answered == r->calls)
		uv_stop(r->loop); /* idle connections keep handles open */
}

static void start_one(struct floor_run *r)
{
	struct http_request req = {0};
	char err[256];
	if (r->prov->build_request(r->pconf, r->model, r->job, 0, &req, err, sizeof err) != 0) {
		fprintf(stderr, "http_floor: the job cannot be sent to this model: %s\n", err);
		exit(2);
	}
	r->started++;
	http_pool_start(r->pool, &req, r->pconf->timeout_ms, on_done, r);
}

static double seconds(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static const char *arg_of(int argc, char **argv, const char *name)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	fprintf(stderr,
	        "usage: http_floor --config FILE --model NAME --job JSON --calls N --in-flight K\n"
	        "missing %s\n",
	        name);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *path = arg_of(argc, argv, "--config");
	const char *model_name = arg_of(argc, argv, "--model");
	const char *job_text = arg_of(argc, argv, "--job");
	long calls = atol(arg_of(argc, argv, "--calls"));
	long in_flight = atol(arg_of(argc, argv, "--in-flight"));
	enum http_version http_version = HTTP_VERSION_DEFAULT;
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--http") == 0)
			http_version = strcmp(argv[i + 1], "2") == 0     ? HTTP_VERSION_2
			               : strcmp(argv[i + 1], "1.1") == 0 ? HTTP_VERSION_1_1
			                                                 : HTTP_VERSION_DEFAULT;
	if (calls <= 0 || in_flight <= 0) {
		fprintf(stderr, "http_floor: --calls and --in-flight must be positive\n");
		return 2;
	}
	char err[1024];
	struct config *cfg = config_load(path, CONFIG_REQUIRE_KEYS, err, sizeof err);
	if (!cfg) {
		fprintf(stderr, "http_floor: %s\n", err);
		return 2;
	}
	int mi = config_model_index(cfg, model_name);
	if (mi < 0) {
		fprintf(stderr, "http_floor: %s: no such model in %s\n", model_name, path);
		return 2;
	}
	struct job job;
	if (job_decode(cfg, job_text, strlen(job_text), &job, err, sizeof err) != 0) {
		fprintf(stderr, "http_floor: --job: %s\n", err);
		return 2;
	}
	if (http_global_init() != 0) {
		fprintf(stderr, "http_floor: curl_global_init failed\n");
		return 1;
	}
	const struct model_conf *m = &cfg->models[mi];
	struct floor_run r = {
	        .pconf = &cfg->providers[m->provider], .model = m, .job = &job, .calls = calls};
	r.prov = provider_lookup(r.pconf->type);
	uv_loop_t loop;
	uv_loop_init(&loop);
	r.loop = &loop;
	struct http_pool_options hopt = {
	        .max_connections = r.pconf->max_connections,
	        .max_body_bytes = 1 << 20,
	        .ca_file = r.pconf->ca_file,
	        .tls = strncmp(r.pconf->base_url, "https://", 8) == 0,
	        .tls_version = http_version,
	};
	r.pool = http_pool_new(&loop, &hopt, err, sizeof err);
	if (!r.pool) {
		fprintf(stderr, "http_floor: %s\n", err);
		return 1;
	}

	struct rusage before, after;
	r.in_flight = in_flight;
	getrusage(RUSAGE_SELF, &before);
	fill(&r);
	uv_run(&loop, UV_RUN_DEFAULT);
	getrusage(RUSAGE_SELF, &after);

	double user = seconds(after.ru_utime) - seconds(before.ru_utime);
	double sys = seconds(after.ru_stime) - seconds(before.ru_stime);
	printf("{\"calls\":%ld,\"failures\":%ld,\"user_us_per_call\":%.2f,"
	       "\"sys_us_per_call\":%.2f,\"failed_status\":%ld,\"timeouts\":%ld,"
	       "\"connect_errors\":%ld,\"other_errors\":%ld,\"last_status\":%ld}\n",
	       r.answered, r.failures, user * 1e6 / (double)r.answered,
	       sys * 1e6 / (double)r.answered, r.by_error[HTTP_OK], r.by_error[HTTP_TIMEOUT],
	       r.by_error[HTTP_CONNECT_ERROR],
	       r.by_error[HTTP_TOO_LARGE] + r.by_error[HTTP_OTHER_ERROR], r.last_status);

	http_pool_free(r.pool);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	http_global_cleanup();
	job_clear(&job);
	config_free(cfg);
	return r.failures == 0 && r.answered == calls ? 0 : 1;
}
