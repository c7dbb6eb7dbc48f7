/* uvpool: holds libuv's thread pool for a test, so that work queued on it
 * meanwhile (a name lookup, a producer's destruction) cannot run until the
 * test lets go. Every thread of the pool waits in pool_hold_work(). */
#ifndef PROMPTYARD_TEST_UVPOOL_H
#define PROMPTYARD_TEST_UVPOOL_H

#include <stdlib.h>
#include <uv.h>

struct pool_hold {
	uv_sem_t started, go;
	uv_work_t work[128];
	int n, done;
};

static void pool_hold_work(uv_work_t *w)
{
	struct pool_hold *h = w->data;
	uv_sem_post(&h->started);
	uv_sem_wait(&h->go);
}

static void pool_hold_after(uv_work_t *w, int status)
{
	struct pool_hold *h = w->data;
	(void)status;
	h->done++;
}

/* Returns once every thread of the pool is held. */
static inline void pool_hold(struct pool_hold *h, uv_loop_t *loop)
{
	/* As libuv sizes its pool (default 4). */
	const char *env = getenv("UV_THREADPOOL_SIZE");
	h->n = env && atoi(env) > 0 ? atoi(env) : 4;
	if (h->n > 128)
		h->n = 128;
	h->done = 0;
	uv_sem_init(&h->started, 0);
	uv_sem_init(&h->go, 0);
	for (int i = 0; i < h->n; i++) {
		h->work[i].data = h;
		uv_queue_work(loop, &h->work[i], pool_hold_work, pool_hold_after);
	}
	for (int i = 0; i < h->n; i++)
		uv_sem_wait(&h->started);
}

/* Lets the pool go and runs loop until the holding work has ended. */
static inline void pool_release(struct pool_hold *h, uv_loop_t *loop)
{
	for (int i = 0; i < h->n; i++)
		uv_sem_post(&h->go);
	while (h->done < h->n)
		uv_run(loop, UV_RUN_ONCE);
	uv_sem_destroy(&h->started);
	uv_sem_destroy(&h->go);
}

#endif
