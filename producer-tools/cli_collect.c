/* promptyard collect: placeholder until its implementation lands. */
#include "cli.h"

#include <stdio.h>

int cli_collect(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("promptyard collect: not implemented yet\n", stderr);
	return 2;
}
