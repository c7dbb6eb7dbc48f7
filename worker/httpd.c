/* httpd: libmicrohttpd driven by a libuv loop, with one handler for every
 * GET and HEAD. */
#include "httpd.h"

#include "buf.h"
#include "log.h"

#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct httpd {
	httpd_handler *handler;
	void *opaque;
	char *what;
	struct MHD_Daemon *d;
	uv_poll_t poll;   /* MHD's epoll descriptor */
	uv_timer_t timer; /* MHD's own timeouts (idle connections) */
	int port;
	int open_handles;
};

static enum MHD_Result respond(struct MHD_Connection *c, const struct httpd_response *out)
{
	/* The body is taken: MHD frees it with the response. */
	struct MHD_Response *r = MHD_create_response_from_buffer(
	        out->len, out->body ? out->body : "",
	        out->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(out->body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, out->content_type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	enum MHD_Result ret = MHD_queue_response(c, out->status, r);
	MHD_destroy_response(r);
	return ret;
}

void httpd_text(struct httpd_response *out, unsigned status, const char *text)
{
	free(out->body);
	out->status = status;
	out->content_type = "text/plain; charset=utf-8";
	out->body = xstrdup(text);
	out->len = strlen(text);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct httpd *h = cls;
	struct httpd_response out = {0};
	(void)version;
	(void)upload_data;
	if (*upload_data_size) {
		*upload_data_size = 0; /* a body is not wanted: drop it */
		return MHD_YES;
	}
	if (!*con_cls) {
		/* The first call has the headers only; answer on the next. */
		*con_cls = h;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		httpd_text(&out, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
		return respond(c, &out);
	}
	httpd_text(&out, MHD_HTTP_NOT_FOUND, "not found\n");
	h->handler(h->opaque, url, &out);
	return respond(c, &out);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct httpd *h = cls;
	if (log_min_level > LOG_WARN)
		return;
	char line[256];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_warn("http server", "listen", h->what, "detail", line, NULL);
}

static void arm_timer(struct httpd *h);

/* Serves whatever is ready, then re-arms the timer for MHD's next deadline. */
static void serve(struct httpd *h)
{
	MHD_run(h->d);
	arm_timer(h);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	serve(p->data);
}

static void on_timer(uv_timer_t *t)
{
	serve(t->data);
}

static void arm_timer(struct httpd *h)
{
	MHD_UNSIGNED_LONG_LONG ms = 0;
	if (MHD_get_timeout(h->d, &ms) == MHD_YES)
		uv_timer_start(&h->timer, on_timer, (uint64_t)ms, 0);
	else
		uv_timer_stop(&h->timer);
}

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" into addr. Returns 0 or -1. */
static int parse_listen(const char *listen, const char *what, struct sockaddr_storage *addr,
                        bool *v6, char *errstr, size_t errstr_size)
{
	const char *colon = strrchr(listen, ':');
	char host[256];
	if (!colon) {
		snprintf(errstr, errstr_size, "%s: expected HOST:PORT, got \"%.100s\"", what,
		         listen);
		return -1;
	}
	size_t hl = (size_t)(colon - listen);
	const char *hp = listen;
	if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
		hp++;
		hl -= 2;
	}
	if (hl >= sizeof host) {
		snprintf(errstr, errstr_size, "%s: host too long", what);
		return -1;
	}
	memcpy(host, hp, hl);
	host[hl] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 0 || port > 65535) {
		snprintf(errstr, errstr_size, "%s: bad port in \"%.100s\"", what, listen);
		return -1;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char port_s[8];
	snprintf(port_s, sizeof port_s, "%ld", port);
	int rc = getaddrinfo(host[0] ? host : NULL, port_s, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(errstr, errstr_size, "%s: %.100s: %s", what, host, gai_strerror(rc));
		return -1;
	}
	/* ":PORT" means every interface: take IPv6 (dual stack) when offered. */
	const struct addrinfo *pick = res;
	for (const struct addrinfo *a = res; !host[0] && a; a = a->ai_next)
		if (a->ai_family == AF_INET6)
			pick = a;
	memcpy(addr, pick->ai_addr, pick->ai_addrlen);
	*v6 = pick->ai_family == AF_INET6;
	freeaddrinfo(res);
	return 0;
}

struct httpd *httpd_start(uv_loop_t *loop, const char *listen, const char *what,
                          httpd_handler *handler, void *opaque, char *errstr, size_t errstr_size)
{
	struct sockaddr_storage addr;
	bool v6 = false;
	if (parse_listen(listen, what, &addr, &v6, errstr, errstr_size) != 0)
		return NULL;
	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) != MHD_YES) {
		snprintf(errstr, errstr_size, "%s: libmicrohttpd lacks epoll support", what);
		return NULL;
	}
	struct httpd *h = xcalloc(1, sizeof *h);
	h->handler = handler;
	h->opaque = opaque;
	h->what = xstrdup(what);
	/* No MHD_USE_INTERNAL_POLLING_THREAD: MHD runs only when the loop calls it. */
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_DUAL_STACK : 0);
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
	                        mhd_log, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
	                        MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT,
	                        15u, MHD_OPTION_END);
	if (!h->d) {
		snprintf(errstr, errstr_size, "%s: cannot listen on %.100s", what, listen);
		goto fail;
	}
	const union MHD_DaemonInfo *port = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = port ? port->port : 0;
	const union MHD_DaemonInfo *ep = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!ep || uv_poll_init(loop, &h->poll, ep->epoll_fd) != 0) {
		snprintf(errstr, errstr_size, "%s: cannot watch the HTTP server's descriptor",
		         what);
		MHD_stop_daemon(h->d);
		goto fail;
	}
	uv_timer_init(loop, &h->timer);
	h->poll.data = h->timer.data = h;
	h->open_handles = 2;
	uv_poll_start(&h->poll, UV_READABLE, on_poll);
	arm_timer(h);
	return h;
fail:
	free(h->what);
	free(h);
	return NULL;
}

int httpd_port(const struct httpd *h)
{
	return h->port;
}

static void handle_closed(uv_handle_t *handle)
{
	struct httpd *h = handle->data;
	if (--h->open_handles == 0) {
		free(h->what);
		free(h);
	}
}

void httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	/* Stop watching the descriptor before MHD closes it. */
	uv_poll_stop(&h->poll);
	uv_timer_stop(&h->timer);
	uv_close((uv_handle_t *)&h->poll, handle_closed);
	uv_close((uv_handle_t *)&h->timer, handle_closed);
	MHD_stop_daemon(h->d);
	h->d = NULL;
}
