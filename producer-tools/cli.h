/* cli: what the subcommands of bin/promptyard share.
 *
 * Each subcommand is one file, cli_<name>.c, exporting
 * `int cli_<name>(int argc, char **argv)` (argv[0] is the subcommand's name)
 * and one line in main.c's table. Exit status: 0 success, 1 runtime failure,
 * 2 usage or configuration error (SPEC §1). */
#ifndef PROMPTYARD_CLI_H
#define PROMPTYARD_CLI_H

#include "config.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

struct cli_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

#define PROMPTYARD_VERSION "0.1.0"

/* Loads the configuration at path for a command line tool (API keys are not
 * required) and applies the --brokers / --redis HOST:PORT overrides (either
 * may be NULL). On error prints "promptyard SUB: FILE:LINE: KEY: problem" on
 * stderr and returns NULL: the caller exits 2. */
struct config *cli_config(const char *sub, const char *path, const char *brokers,
			  const char *redis);

/* Applies a --redis HOST:PORT override. Returns 0, or -1 if it is not one. */
int cli_override_redis(struct config *cfg, const char *hostport);

/* A blocking Redis connection for a tool (authenticated, db selected). On
 * error prints "promptyard SUB: redis HOST:PORT: why" and returns NULL: the
 * caller exits 1. */
redisContext *cli_redis(const char *sub, const struct config *cfg);

/* Whether stderr is a terminal (progress bars) or not (plain progress lines). */
bool cli_tty(void);

int cli_version(int argc, char **argv);
int cli_submit(int argc, char **argv);
int cli_collect(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_budget(int argc, char **argv);
int cli_estimate(int argc, char **argv);
int cli_route(int argc, char **argv);
int cli_dlq(int argc, char **argv);
int cli_dev(int argc, char **argv);

#endif
