/* Unit tests of metrics: the text exposition format, escaping, histogram
 * arithmetic, and real HTTP requests against the server on a loopback port,
 * served and sent from one libuv loop (the server has no thread). */
#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "unit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <uv.h>

static char *render(const struct metrics *m)
{
	struct buf b = {0};
	metrics_render(m, &b);
	return buf_take(&b);
}

TEST(metrics_help_and_type_lines)
{
	struct metrics *m = metrics_new();
	char *t = render(m);
	/* Every metric of SPEC §11, with its type, even before any series exists. */
	CHECK_HAS(t, "# TYPE promptyard_jobs_total counter\n");
	CHECK_HAS(t, "# TYPE promptyard_attempts_total counter\n");
	CHECK_HAS(t, "# TYPE promptyard_spend_usd_total counter\n");
	CHECK_HAS(t, "# TYPE promptyard_in_flight_jobs gauge\n");
	CHECK_HAS(t, "# TYPE promptyard_provider_latency_seconds histogram\n");
	CHECK_HAS(t, "# TYPE promptyard_budget_remaining_usd gauge\n");
	CHECK_HAS(t, "# TYPE promptyard_circuit_open gauge\n");
	CHECK_HAS(t, "# HELP promptyard_jobs_total Jobs finished");
	/* Unlabelled gauges are there at 0 from the start. */
	CHECK_HAS(t, "\npromptyard_in_flight_jobs 0\n");
	/* HELP comes right before TYPE for each metric. */
	CHECK_HAS(t, "\n# TYPE promptyard_circuit_open gauge\n");
	CHECK(strstr(t, "# HELP promptyard_circuit_open") <
	      strstr(t, "# TYPE promptyard_circuit_open"));
	/* Ends with a newline, as the format requires. */
	CHECK(t[strlen(t) - 1] == '\n');
	free(t);
	metrics_free(m);
}

TEST(metrics_counters_and_gauges)
{
	struct metrics *m = metrics_new();
	metrics_add(m, METRIC_JOBS_TOTAL, (const char *[]){"ok", ""}, 1);
	metrics_add(m, METRIC_JOBS_TOTAL, (const char *[]){"ok", ""}, 2);
	metrics_add(m, METRIC_JOBS_TOTAL, (const char *[]){"error", "expired"}, 1);
	metrics_add(m, METRIC_JOBS_TOTAL, (const char *[]){"error", "expired"}, -5); /* ignored */
	metrics_add(m, METRIC_ATTEMPTS_TOTAL, (const char *[]){"openai", "gpt-4o-mini", "http_429"},
	            1);
	/* Spend is added in nano-USD and shown in USD, exactly. */
	metrics_add(m, METRIC_SPEND_USD_TOTAL, (const char *[]){"nightly", "openai", "gpt-4o-mini"},
	            179400);
	metrics_add(m, METRIC_SPEND_USD_TOTAL, (const char *[]){"nightly", "openai", "gpt-4o-mini"},
	            100000000);
	metrics_set(m, METRIC_BUDGET_REMAINING_USD, (const char *[]){"nightly"}, 12500000000LL);
	metrics_set(m, METRIC_BUDGET_REMAINING_USD, (const char *[]){"overdrawn"}, -500000000);
	metrics_add(m, METRIC_IN_FLIGHT_JOBS, NULL, 3);
	metrics_add(m, METRIC_IN_FLIGHT_JOBS, NULL, -1);
	metrics_set(m, METRIC_CIRCUIT_OPEN, (const char *[]){"claude-haiku"}, 1);
	metrics_add(m, METRIC_CIRCUIT_OPEN, (const char *[]){"claude-haiku"}, 0);
	char *t = render(m);
	CHECK_HAS(t, "\npromptyard_jobs_total{status=\"ok\",code=\"\"} 3\n");
	CHECK_HAS(t, "\npromptyard_jobs_total{status=\"error\",code=\"expired\"} 1\n");
	CHECK_HAS(t, "\npromptyard_attempts_total{provider=\"openai\",model=\"gpt-4o-mini\","
	             "outcome=\"http_429\"} 1\n");
	CHECK_HAS(t, "\npromptyard_spend_usd_total{budget=\"nightly\",provider=\"openai\","
	             "model=\"gpt-4o-mini\"} 0.1001794\n");
	CHECK_HAS(t, "\npromptyard_budget_remaining_usd{budget=\"nightly\"} 12.5\n");
	CHECK_HAS(t, "\npromptyard_budget_remaining_usd{budget=\"overdrawn\"} -0.5\n");
	CHECK_HAS(t, "\npromptyard_in_flight_jobs 2\n");
	CHECK_HAS(t, "\npromptyard_circuit_open{model=\"claude-haiku\"} 1\n");
	/* Series keep their creation order: ok before error. */
	CHECK(strstr(t, "status=\"ok\"") < strstr(t, "status=\"error\""));
	free(t);
	metrics_free(m);
}

TEST(metrics_series_handles_are_stable)
{
	struct metrics *m = metrics_new();
	const char *l1[] = {"openai", "a"};
	struct metrics_series *a = metrics_series(m, METRIC_PROVIDER_LATENCY, l1);
	/* Enough series to make the table grow several times. */
	char name[32];
	for (int i = 0; i < 500; i++) {
		snprintf(name, sizeof name, "model-%d", i);
		metrics_observe(m, METRIC_PROVIDER_LATENCY, (const char *[]){"openai", name}, i);
	}
	CHECK(metrics_series(m, METRIC_PROVIDER_LATENCY, l1) == a);
	/* Label boundaries matter: ("ab","") and ("a","b") are different series. */
	struct metrics_series *x = metrics_series(m, METRIC_JOBS_TOTAL, (const char *[]){"ab", ""});
	struct metrics_series *y = metrics_series(m, METRIC_JOBS_TOTAL, (const char *[]){"a", "b"});
	CHECK(x != y);
	metrics_series_add(x, 4);
	CHECK_INT(metrics_series_value(x), 4);
	CHECK_INT(metrics_series_value(y), 0);
	/* A NULL label value is the empty string. */
	CHECK(metrics_series(m, METRIC_JOBS_TOTAL, (const char *[]){"ok", NULL}) ==
	      metrics_series(m, METRIC_JOBS_TOTAL, (const char *[]){"ok", ""}));
	snprintf(name, sizeof name, "model-%d", 499);
	CHECK_INT(metrics_series_value(metrics_series(m, METRIC_PROVIDER_LATENCY,
	                                              (const char *[]){"openai", name})),
	          1);
	/* set on a counter and add on a histogram are ignored. */
	metrics_series_set(x, 100);
	CHECK_INT(metrics_series_value(x), 4);
	CHECK_INT(metrics_label_count(METRIC_ATTEMPTS_TOTAL), 3);
	CHECK_STR(metrics_name(METRIC_PROVIDER_LATENCY), "promptyard_provider_latency_seconds");
	metrics_free(m);
}

TEST(metrics_label_escaping)
{
	struct metrics *m = metrics_new();
	metrics_add(m, METRIC_JOBS_TOTAL, (const char *[]){"a\"b", "c\\d\ne"}, 1);
	metrics_set(m, METRIC_CIRCUIT_OPEN, (const char *[]){"caf\xc3\xa9 {x}"}, 1);
	char *t = render(m);
	CHECK_HAS(t, "promptyard_jobs_total{status=\"a\\\"b\",code=\"c\\\\d\\ne\"} 1\n");
	/* UTF-8 and braces need no escaping inside a quoted value. */
	CHECK_HAS(t, "promptyard_circuit_open{model=\"caf\xc3\xa9 {x}\"} 1\n");
	/* No raw newline inside any sample line: every line is a comment or a sample. */
	for (char *line = t; *line;) {
		char *nl = strchr(line, '\n');
		CHECK(nl != NULL);
		if (!nl)
			break;
		CHECK(line[0] == '#' || strncmp(line, "promptyard_", 11) == 0);
		line = nl + 1;
	}
	free(t);
	metrics_free(m);
}

TEST(metrics_histogram_math)
{
	struct metrics *m = metrics_new();
	const char *l[] = {"anthropic", "claude-haiku"};
	metrics_observe(m, METRIC_PROVIDER_LATENCY, l, 30);     /* <= 0.05 */
	metrics_observe(m, METRIC_PROVIDER_LATENCY, l, 50);     /* <= 0.05: bounds are inclusive */
	metrics_observe(m, METRIC_PROVIDER_LATENCY, l, 70);     /* <= 0.1 */
	metrics_observe(m, METRIC_PROVIDER_LATENCY, l, 1500);   /* <= 2 */
	metrics_observe(m, METRIC_PROVIDER_LATENCY, l, 130000); /* +Inf only */
	char *t = render(m);
	const char *p = "promptyard_provider_latency_seconds_bucket{provider=\"anthropic\","
	                "model=\"claude-haiku\",";
	char want[256];
	struct {
		const char *le;
		int n;
	} rows[] = {{"0.05", 2}, {"0.1", 3}, {"0.25", 3}, {"0.5", 3}, {"1", 3},
	            {"2", 4},    {"4", 4},   {"8", 4},    {"15", 4},  {"30", 4},
	            {"45", 4},   {"60", 4},  {"90", 4},   {"120", 4}, {"+Inf", 5}};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		snprintf(want, sizeof want, "%sle=\"%s\"} %d\n", p, rows[i].le, rows[i].n);
		CHECK_HAS(t, want);
	}
	CHECK_HAS(t, "promptyard_provider_latency_seconds_sum{provider=\"anthropic\","
	             "model=\"claude-haiku\"} 131.65\n");
	CHECK_HAS(t, "promptyard_provider_latency_seconds_count{provider=\"anthropic\","
	             "model=\"claude-haiku\"} 5\n");
	/* Buckets are in increasing order of le, +Inf last. */
	CHECK(strstr(t, "le=\"0.05\"") < strstr(t, "le=\"120\""));
	CHECK(strstr(t, "le=\"120\"") < strstr(t, "le=\"+Inf\""));
	/* The bounds are increasing and span 50 ms to 2 min. */
	for (int i = 1; i < METRICS_LATENCY_BUCKETS; i++)
		CHECK(metrics_latency_bounds_ms[i] > metrics_latency_bounds_ms[i - 1]);
	CHECK_INT(metrics_latency_bounds_ms[0], 50);
	CHECK_INT(metrics_latency_bounds_ms[METRICS_LATENCY_BUCKETS - 1], 120000);
	free(t);
	metrics_free(m);
}

/* ---------------------------------------------------------------- HTTP */

/* One HTTP/1.0 request over a uv_tcp_t on the same loop as the server. */
struct client {
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_write_t write;
	char request[256];
	struct buf response;
	bool done;
	int status;
};

static void client_closed(uv_handle_t *h)
{
	struct client *c = h->data;
	c->done = true;
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
	(void)h;
	out->base = malloc(suggested);
	out->len = suggested;
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct client *c = s->data;
	if (n > 0)
		buf_append(&c->response, b->base, (size_t)n);
	free(b->base);
	if (n < 0) {
		if (n != UV_EOF)
			c->status = (int)n;
		uv_close((uv_handle_t *)&c->tcp, client_closed);
	}
}

static void client_written(uv_write_t *w, int status)
{
	struct client *c = w->data;
	if (status < 0) {
		c->status = status;
		uv_close((uv_handle_t *)&c->tcp, client_closed);
		return;
	}
	uv_read_start((uv_stream_t *)&c->tcp, client_alloc, client_read);
}

static void client_connected(uv_connect_t *req, int status)
{
	struct client *c = req->data;
	if (status < 0) {
		c->status = status;
		uv_close((uv_handle_t *)&c->tcp, client_closed);
		return;
	}
	uv_buf_t b = uv_buf_init(c->request, (unsigned)strlen(c->request));
	c->write.data = c;
	uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, client_written);
}

/* Sends "METHOD PATH" to 127.0.0.1:port and runs the loop until the server
 * closed the connection. Returns the raw response (new). */
static char *http_request(uv_loop_t *loop, int port, const char *method, const char *path)
{
	struct client c;
	memset(&c, 0, sizeof c);
	snprintf(c.request, sizeof c.request, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method,
	         path);
	struct sockaddr_in addr;
	uv_ip4_addr("127.0.0.1", port, &addr);
	uv_tcp_init(loop, &c.tcp);
	c.tcp.data = c.connect.data = &c;
	uv_tcp_connect(&c.connect, &c.tcp, (const struct sockaddr *)&addr, client_connected);
	while (!c.done)
		uv_run(loop, UV_RUN_ONCE);
	if (c.status != 0) {
		buf_free(&c.response);
		return NULL;
	}
	return c.response.data ? buf_take(&c.response) : xstrdup("");
}

static bool ready_flag;

static bool ready_cb(void *opaque, char *reason, size_t reason_size)
{
	(void)opaque;
	if (!ready_flag)
		snprintf(reason, reason_size, "redis unreachable");
	return ready_flag;
}

TEST(metrics_http_endpoints)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct metrics *m = metrics_new();
	char err[256];
	struct metrics_server *s =
	        metrics_server_start(&loop, m, "127.0.0.1:0", ready_cb, NULL, err, sizeof err);
	CHECK(s != NULL);
	if (!s) {
		printf("     %s\n", err);
		metrics_free(m);
		uv_loop_close(&loop);
		return;
	}
	int port = metrics_server_port(s);
	CHECK(port > 0);
	metrics_add(m, METRIC_JOBS_TOTAL, (const char *[]){"ok", ""}, 7);
	metrics_observe(m, METRIC_PROVIDER_LATENCY, (const char *[]){"openai", "gpt-4o-mini"}, 930);

	char *r = http_request(&loop, port, "GET", "/metrics");
	CHECK(r != NULL);
	CHECK_HAS(r, "HTTP/1.1 200 OK\r\n");
	CHECK_HAS(r, "text/plain; version=0.0.4");
	CHECK_HAS(r, "\r\n\r\n# HELP promptyard_jobs_total");
	CHECK_HAS(r, "promptyard_jobs_total{status=\"ok\",code=\"\"} 7\n");
	CHECK_HAS(r, "promptyard_provider_latency_seconds_sum{provider=\"openai\",model=\"gpt-4o-"
	             "mini\"} 0.93\n");
	/* Scraped while not ready: the readiness gauge says so. */
	CHECK_HAS(r, "\npromptyard_ready 0\n");
	free(r);

	r = http_request(&loop, port, "GET", "/healthz");
	CHECK_HAS(r, " 200");
	CHECK_HAS(r, "\r\n\r\nok\n");
	free(r);

	ready_flag = false;
	r = http_request(&loop, port, "GET", "/readyz");
	CHECK_HAS(r, " 503");
	CHECK_HAS(r, "not ready: redis unreachable\n");
	free(r);

	ready_flag = true;
	r = http_request(&loop, port, "GET", "/readyz");
	CHECK_HAS(r, " 200");
	CHECK_HAS(r, "ready\n");
	free(r);

	r = http_request(&loop, port, "GET", "/metrics");
	CHECK_HAS(r, "\npromptyard_ready 1\n");
	free(r);

	r = http_request(&loop, port, "GET", "/nope");
	CHECK_HAS(r, " 404");
	free(r);

	r = http_request(&loop, port, "POST", "/metrics");
	CHECK_HAS(r, " 405");
	free(r);

	r = http_request(&loop, port, "HEAD", "/healthz");
	CHECK_HAS(r, " 200");
	CHECK(strstr(r, "\r\n\r\nok") == NULL); /* no body for HEAD */
	free(r);

	metrics_server_stop(s);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(uv_loop_close(&loop), 0);
	metrics_free(m);
}

TEST(metrics_bad_listen_addresses)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct metrics *m = metrics_new();
	char err[256];
	CHECK(metrics_server_start(&loop, m, "nocolon", NULL, NULL, err, sizeof err) == NULL);
	CHECK_HAS(err, "HOST:PORT");
	CHECK(metrics_server_start(&loop, m, "127.0.0.1:99999", NULL, NULL, err, sizeof err) ==
	      NULL);
	CHECK_HAS(err, "port");
	/* The same port twice: the second cannot bind. */
	struct metrics_server *a =
	        metrics_server_start(&loop, m, "127.0.0.1:0", NULL, NULL, err, sizeof err);
	CHECK(a != NULL);
	if (a) {
		char addr[64];
		snprintf(addr, sizeof addr, "127.0.0.1:%d", metrics_server_port(a));
		struct metrics_server *b =
		        metrics_server_start(&loop, m, addr, NULL, NULL, err, sizeof err);
		CHECK(b == NULL);
		metrics_server_stop(b);
		/* IPv6 / all interfaces form parses (bind may be refused where IPv6 is off). */
		struct metrics_server *c =
		        metrics_server_start(&loop, m, ":0", NULL, NULL, err, sizeof err);
		metrics_server_stop(c);
		metrics_server_stop(a);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(uv_loop_close(&loop), 0);
	metrics_free(m);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* the failed bind below logs a warning */
	RUN(metrics_help_and_type_lines);
	RUN(metrics_counters_and_gauges);
	RUN(metrics_series_handles_are_stable);
	RUN(metrics_label_escaping);
	RUN(metrics_histogram_math);
	RUN(metrics_http_endpoints);
	RUN(metrics_bad_listen_addresses);
	return unit_done();
}
