/* promptyard status: placeholder until its implementation lands. */
#include "cli.h"

#include <stdio.h>

int cli_status(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("promptyard status: not implemented yet\n", stderr);
	return 2;
}
