/* redis: one asynchronous Redis connection on the worker's loop (hiredis).
 *
 * It connects, authenticates, selects the db and loads the Lua scripts, then
 * reports itself ready. When the connection is lost (or a reply is overdue by
 * more than timeout_ms), every pending callback is called with a NULL reply,
 * the state turns not-ready, and it reconnects with backoff until Redis is
 * back. Commands sent while not ready fail at once (the callback runs on the
 * loop with NULL): the caller decides whether to retry, which is how the
 * budget fails closed.
 *
 * With sentinels (SPEC §15) the server is the master that the sentinels
 * name: it asks them in order, checks that the server it reaches says ROLE
 * master (a sentinel's answer can be stale), asks again every second and
 * whenever the connection is lost, and follows the master where it moves.
 * While no master is known the connection is not ready. Redis replicates
 * asynchronously, so a failover can lose the writes its replica had not
 * received yet: with min_replicas_acked > 0, a durable script's callback
 * (redis_set_durable) runs only once `WAIT min_replicas_acked` confirmed
 * that many replicas hold its write. One WAIT is sent after each loop
 * turn's commands and covers every write before it on the connection. A
 * WAIT that counts fewer replicas hands NULL to the callbacks it covers
 * (the writes may be lost: the caller retries, its steps being idempotent)
 * and turns the connection not-ready until a WAIT counts enough again.
 *
 * Authentication: AUTH <username> <password> for an ACL user, AUTH
 * <password> for the default user. Sentinels get the same AUTH when one is
 * configured; a sentinel that refuses it but needs none still answers. The
 * password is never logged, nor put in an error message. */
#ifndef PROMPTYARD_REDIS_H
#define PROMPTYARD_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct buf;
struct redis;

/* reply is borrowed for the callback's duration; NULL when the command could
 * not be completed (connection lost, not ready). */
typedef void redis_reply_cb(void *opaque, redisReply *reply);
typedef void redis_state_cb(void *opaque, bool ready);

struct config;

/* Every string is borrowed for the call (redis_new copies what it keeps). */
struct redis_options {
	const char *host; /* without sentinels: the server */
	int port;
	const char *username; /* ACL user; NULL for the default user */
	const char *password; /* NULL for none; never logged */
	int db;
	int64_t timeout_ms; /* connect, each reply, and each sentinel asked */
	/* Sentinels ("host:port", an IPv6 host in brackets) that monitor
	 * sentinel_master; none: host and port are the server itself. */
	const char *const *sentinels;
	size_t n_sentinels;
	const char *sentinel_master;
	/* With sentinels: replicas a durable call's write must reach before its
	 * callback runs (WAIT); 0 for none. Ignored without sentinels. */
	int min_replicas_acked;
};

/* The options of cfg's redis section (strings borrowed from cfg). */
struct redis_options redis_options_from_config(const struct config *cfg);

struct redis *redis_new(uv_loop_t *loop, const struct redis_options *opt, redis_state_cb *state_cb,
                        void *opaque);

/* Registers a Lua script (source borrowed: a static string) and returns its
 * id for redis_eval(). Scripts are loaded at every (re)connect before the
 * connection reports ready. Register before redis_start(). */
size_t redis_add_script(struct redis *r, const char *name, const char *source);
/* Marks a script (plain or batch) as a write the caller acts on: with
 * min_replicas_acked, its callbacks wait for WAIT (see the top). A script
 * that only reads needs no mark. */
void redis_set_durable(struct redis *r, size_t script);
void redis_start(struct redis *r);
bool redis_ready(const struct redis *r);
/* Why it is not ready, for /readyz and logs (a static string), or NULL
 * when it is. */
const char *redis_unready_reason(const struct redis *r);
/* Commands sent and not yet answered. */
int redis_pending(const struct redis *r);

/* Sends a command. cb runs exactly once, on the loop; it may be NULL when
 * the caller does not care about the reply. */
void redis_command(struct redis *r, redis_reply_cb *cb, void *opaque, int argc, const char **argv,
                   const size_t *argvlen);
/* EVALSHA of scripts[script] with nkeys keys among argv (which holds only the
 * keys and arguments), reloading the script once if Redis lost it. */
void redis_eval(struct redis *r, size_t script, redis_reply_cb *cb, void *opaque, int nkeys,
                int argc, const char **argv, const size_t *argvlen);

/* Registers a script's batch form (source borrowed, as above): calls of it
 * made with redis_eval_batch() during one turn of the loop go to Redis as
 * one EVALSHA, just before the loop waits (or at once when a batch is
 * large). The script is written for one call (its KEYS and ARGV); each call
 * of a batch runs it in turn, in the order made, and its callback gets its
 * own element of the reply (or, when the whole batch failed, the error or
 * NULL). The steps of a batch run in one script: atomic together. */
size_t redis_add_batch_script(struct redis *r, const char *name, const char *source);
/* As redis_eval, batched when script is a batch script. */
void redis_eval_batch(struct redis *r, size_t script, redis_reply_cb *cb, void *opaque, int nkeys,
                      int argc, const char **argv, const size_t *argvlen);

/* Writes the command into out (reset first) in RESP, byte for byte as
 * hiredis' redisFormatCommandArgv does (argvlen NULL: C strings). Every
 * command the loop's connection sends is formatted here, into a buffer the
 * connection reuses, and handed to redisAsyncFormattedCommand: hiredis
 * formats each argument's length with its own printf (sdscatfmt) into a
 * new string per command, which was 19,000 instructions per job for the
 * batches of a job's ledger steps (callgrind, make bench b). */
void redis_format_command(struct buf *out, int argc, const char **argv, const size_t *argvlen);

/* A deep copy of reply, for one that must outlive its callback (new; free
 * it with freeReplyObject()). */
redisReply *redis_reply_copy(const redisReply *reply);

/* Closes the connection; pending callbacks run with NULL. The loop must be run
 * afterwards to let libuv close its handles. NULL is safe. */
void redis_free(struct redis *r);

/* A blocking connection for the command line and start-up checks (it blocks:
 * never on the loop). With sentinels it asks them in order for the master
 * (timeout_ms each) and checks the server's ROLE; then it authenticates and
 * selects the db. Returns a new context, or NULL with errstr set (naming
 * the server and the user, never the password). */
redisContext *redis_connect_blocking(const struct redis_options *opt, char *errstr,
                                     size_t errstr_size);

/* A blocking check used once at start-up, before the loop runs:
 * redis_connect_blocking() and a PING. Returns 0, or -1 with errstr set. */
int redis_probe(const struct redis_options *opt, char *errstr, size_t errstr_size);

#endif
