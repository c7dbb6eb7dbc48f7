/* promptyard budget: placeholder until its implementation lands. */
#include "cli.h"

#include <stdio.h>

int cli_budget(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("promptyard budget: not implemented yet\n", stderr);
	return 2;
}
