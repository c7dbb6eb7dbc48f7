/* promptyard submit: placeholder until its implementation lands. */
#include "cli.h"

#include <stdio.h>

int cli_submit(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("promptyard submit: not implemented yet\n", stderr);
	return 2;
}
