/* servers: small helpers for unit tests that run servers (redis-server) on
 * loopback: a free port, and the number a reply holds. */
#ifndef PROMPTYARD_TEST_SERVERS_H
#define PROMPTYARD_TEST_SERVERS_H

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* A TCP port on 127.0.0.1 free when asked: another process may take it
 * before the server binds, so a caller that fails to start tries another. */
static inline int loopback_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* The number reply (taken: freed here) holds: an integer, a string of one,
 * or nil (0); -1 for anything else or NULL. */
static inline long long reply_number(redisReply *r)
{
	long long v = -1;
	if (r && r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	else if (r && r->type == REDIS_REPLY_STRING)
		v = atoll(r->str);
	else if (r && r->type == REDIS_REPLY_NIL)
		v = 0;
	if (r)
		freeReplyObject(r);
	return v;
}

#endif
