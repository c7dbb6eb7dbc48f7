/* redis_int.h: what the files of the Redis connection share (redis.c,
 * redis_call.c, redis_batch.c, redis_blocking.c); nothing outside them
 * includes it. */
#ifndef PROMPTYARD_REDIS_INT_H
#define PROMPTYARD_REDIS_INT_H

#include "buf.h"
#include "redis.h"

#include <hiredis/async.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* R_UNACKED: connected to the master, which has fewer replicas than
 * min_replicas_acked acknowledging (not ready). */
enum redis_state { R_DOWN, R_CONNECTING, R_LOADING, R_UNACKED, R_READY };

/* A Lua script and, once loaded, its SHA1. */
struct redis_script {
	const char *name;
	const char *source;
	char *owned; /* source, when it was made here (a batch form) */
	char sha[41];
	struct batch *batch; /* a batch script's calls of this loop turn */
	bool durable;        /* its callbacks wait for WAIT (redis_set_durable) */
};

/* Calls of a batch script gathered during one loop turn (see
 * redis_eval_batch): every call's keys back to back, and for each call
 * "<its key count>", "<its argument count>" and its arguments. */
struct batch_item {
	redis_reply_cb *cb;
	void *opaque;
};
struct batch {
	size_t script;
	struct buf keys, args; /* the bytes, back to back */
	size_t *klens, *alens;
	size_t nk, na, cap_k, cap_a;
	struct batch_item *items;
	size_t n, cap;
	bool queued; /* on the redis' list of batches to send */
	struct batch *next;
};

struct held;

struct redis {
	uv_loop_t *loop;
	struct redis_options opt;
	char *host; /* the server's name; with sentinels, the master's */
	char *username;
	char *password;
	bool is_sentinel;             /* a connection to a sentinel, made by its parent */
	struct redis_script *scripts; /* new */
	size_t n_scripts;
	redis_state_cb *state_cb;
	void *opaque;

	/* The name's addresses: a lookup in flight, or the addresses of the last
	 * lookup not tried yet (the list is dropped once one connects, so that a
	 * reconnect looks the name up again). */
	uv_getaddrinfo_t *resolving;
	struct addrinfo *addrs, *next_addr;

	redisAsyncContext *ac;
	enum redis_state state;
	int pending;              /* commands sent on ac, not answered */
	int loading;              /* handshake replies still expected */
	int64_t last_progress_ms; /* last reply or connect */
	bool suspect;             /* the watchdog saw no progress once */
	int64_t backoff_ms;
	uv_timer_t reconnect;
	uv_timer_t watchdog;
	bool closing;
	int open_handles;     /* the three handles, and a lookup in flight */
	struct later *laters; /* deferred failures not yet delivered */
	uv_prepare_t flush;   /* sends the batches (and a WAIT) before the loop waits */
	struct batch *to_send;
	bool dropping;       /* dropped politely: its later replies are not believed */
	bool warned_unacked; /* said so when the replicas stopped acknowledging */

	/* With sentinels: one connection to each; the master's name and
	 * whether host and opt.port hold its address. */
	struct redis **sentinels; /* new, each */
	size_t n_sentinels;
	char *master_name;
	bool master_known;
	bool asking;         /* a SENTINEL query in flight */
	size_t asked;        /* the sentinel it went to */
	int64_t last_ask_ms; /* when the last round of queries began */
	int failed_rounds;   /* in a row, while no master is known */

	/* Replica acknowledgement (min_replicas_acked with sentinels). */
	int wait_n;              /* 0: off */
	int64_t wait_timeout_ms; /* each WAIT's own timeout */
	int unwaited;            /* durable calls sent after the last WAIT */
	int waits;               /* WAITs in flight */
	struct held *held;       /* durable replies waiting for their WAIT, in order */
	struct held **held_tail;

	struct buf cmd; /* send_call's command in RESP, reused */
};

/* A durable call's reply, copied, until the WAIT after it answers. */
struct held {
	struct call *call;
	redisReply *reply;
	struct held *next;
};

/* What a command carries through hiredis. */
struct call {
	struct redis *r;
	redis_reply_cb *cb;
	void *opaque;
	/* For redis_eval's one reload on NOSCRIPT: the command, copied into
	 * one block that argv points into. */
	size_t script;
	int nkeys, argc;
	char *block;
	const char **argv;
	size_t *argvlen;
	bool retried;
	bool durable; /* its reply waits for a WAIT */
};

/* ---------------------------------------------------------------- redis.c */

void redis_set_state(struct redis *r, enum redis_state s);
void redis_log_ready(const struct redis *r);
/* Whether a ROLE reply says master. */
bool redis_is_master(const redisReply *reply);
/* Gives up on the connection (see its comment in redis.c). */
void redis_drop_connection(struct redis *r, const char *why, bool in_callback);
/* A reply that only keeps the bookkeeping (privdata: a script's index
 * whose SHA1 the reply may carry, or SIZE_MAX). */
void redis_on_aux_reply(redisAsyncContext *ac, void *reply_, void *privdata);

/* ---------------------------------------------------------------- redis_call.c */

/* Hands every held reply to its callback, or NULL when acked is false. */
void redis_release_held(struct redis *r, bool acked);
/* WAIT for the replicas: it covers every write sent before it. */
void redis_send_wait(struct redis *r);
/* Runs the callbacks of the calls failed while not ready (with NULL) now. */
void redis_fail_laters(struct redis *r);
/* The flush handle: sends the turn's batches, then its WAIT. */
void redis_on_flush(uv_prepare_t *h);
/* A call of script with room for argc arguments of total bytes in one block
 * (argv and argvlen set by the caller). */
struct call *redis_eval_call(struct redis *r, size_t script, redis_reply_cb *cb, void *opaque,
                             int nkeys, int argc, size_t total);
/* Sends c as EVALSHA (taken: freed once its reply is handed on). */
void redis_send_eval(struct redis *r, struct call *c);

/* ---------------------------------------------------------------- redis_batch.c */

/* Sends batch b's calls as one EVALSHA and empties it. */
void redis_batch_send(struct redis *r, struct batch *b);

/* ---------------------------------------------------------------- redis_blocking.c */

/* "host:port" or "[v6]:port" into host (NUL-terminated) and port. Returns 0,
 * or -1 when s is neither or host does not fit. */
int redis_split_host_port(const char *s, char *host, size_t host_size, int *port);

#endif
