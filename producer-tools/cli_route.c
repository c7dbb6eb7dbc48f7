/* promptyard route: placeholder until its implementation lands. */
#include "cli.h"

#include <stdio.h>

int cli_route(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("promptyard route: not implemented yet\n", stderr);
	return 2;
}
