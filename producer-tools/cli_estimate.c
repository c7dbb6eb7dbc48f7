/* promptyard estimate: placeholder until its implementation lands. */
#include "cli.h"

#include <stdio.h>

int cli_estimate(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("promptyard estimate: not implemented yet\n", stderr);
	return 2;
}
