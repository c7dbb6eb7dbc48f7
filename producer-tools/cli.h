/* cli: what the subcommands of bin/promptyard share. */
#ifndef PROMPTYARD_CLI_H
#define PROMPTYARD_CLI_H

struct cli_command {
	const char *name;
	const char *summary;
	/* argv[0] is the subcommand's name. Returns the exit status. */
	int (*run)(int argc, char **argv);
};

#define PROMPTYARD_VERSION "0.1.0"

int cli_version(int argc, char **argv);

#endif
