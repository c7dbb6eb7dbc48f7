/* promptyard dev: placeholder until its implementation lands. */
#include "cli.h"

#include <stdio.h>

int cli_dev(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("promptyard dev: not implemented yet\n", stderr);
	return 2;
}
