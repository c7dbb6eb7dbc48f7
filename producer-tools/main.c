/* promptyard: the command line of SPEC §10.
 *
 *   promptyard SUBCOMMAND [options]
 *
 * Each subcommand lives in its own file (cli_<name>.c) and is one line in the
 * table below. Exit status: 0 success, 1 runtime failure, 2 usage or
 * configuration error. */
#include "cli.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

static const struct cli_command commands[] = {
        {"submit", "produce jobs from a JSON Lines file (native or OpenAI Batch)", cli_submit},
        {"collect", "read results into a file (native or OpenAI Batch output)", cli_collect},
        {"status", "budgets, job counts and consumer lag", cli_status},
        {"budget", "set, show or reset budgets in Redis", cli_budget},
        {"estimate", "project the cost of a JSONL file without calling anything", cli_estimate},
        {"batches", "list provider batches (batch mode), or cancel one", cli_batches},
        {"route", "explain the routing decision for one job", cli_route},
        {"dlq", "replay dead-lettered jobs", cli_dlq},
        {"catalog", "import models from LiteLLM's price map, or check prices against it",
         cli_catalog},
        {"dashboard", "serve the control center: budgets, spend, jobs, circuits, batches",
         cli_dashboard},
        {"dev", "run the embedded stack: Kafka, Redis, a simulated provider, a worker", cli_dev},
        {"version", "print the version", cli_version},
};

static void usage(FILE *out)
{
	fputs("usage: promptyard SUBCOMMAND [options]\n\nsubcommands:\n", out);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
	log_set_component("cli");
	log_set_level(LOG_WARN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "promptyard: unknown subcommand \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
