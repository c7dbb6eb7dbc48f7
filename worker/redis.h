/* redis: one asynchronous Redis connection on the worker's loop (hiredis).
 *
 * It connects, authenticates, selects the db and loads the Lua scripts, then
 * reports itself ready. When the connection is lost (or a reply is overdue by
 * more than timeout_ms), every pending callback is called with a NULL reply,
 * the state turns not-ready, and it reconnects with backoff until Redis is
 * back. Commands sent while not ready fail at once (the callback runs on the
 * loop with NULL): the caller decides whether to retry, which is how the
 * budget fails closed. */
#ifndef PROMPTYARD_REDIS_H
#define PROMPTYARD_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct redis;

/* reply is borrowed for the callback's duration; NULL when the command could
 * not be completed (connection lost, not ready). */
typedef void redis_reply_cb(void *opaque, redisReply *reply);
typedef void redis_state_cb(void *opaque, bool ready);

struct redis_options {
	const char *host;
	int port;
	const char *password; /* NULL for none; never logged */
	int db;
	int64_t timeout_ms;
};

struct redis *redis_new(uv_loop_t *loop, const struct redis_options *opt, redis_state_cb *state_cb,
                        void *opaque);

/* Registers a Lua script (source borrowed: a static string) and returns its
 * id for redis_eval(). Scripts are loaded at every (re)connect before the
 * connection reports ready. Register before redis_start(). */
size_t redis_add_script(struct redis *r, const char *name, const char *source);
void redis_start(struct redis *r);
bool redis_ready(const struct redis *r);
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

/* Closes the connection; pending callbacks run with NULL. The loop must be run
 * afterwards to let libuv close its handles. NULL is safe. */
void redis_free(struct redis *r);

/* A blocking check used once at start-up, before the loop runs: connects,
 * authenticates and PINGs. Returns 0, or -1 with errstr set. */
int redis_probe(const struct redis_options *opt, char *errstr, size_t errstr_size);

#endif
