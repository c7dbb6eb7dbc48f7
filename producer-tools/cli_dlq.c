/* promptyard dlq: placeholder until its implementation lands. */
#include "cli.h"

#include <stdio.h>

int cli_dlq(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("promptyard dlq: not implemented yet\n", stderr);
	return 2;
}
