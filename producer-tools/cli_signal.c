/* cli_signal: Ctrl-C for the long-running subcommands (collect, dev, ...):
 * the first signal asks them to stop cleanly, a second one exits at once. */
#include "cli.h"

#include <string.h>
#include <unistd.h>

volatile sig_atomic_t cli_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	if (cli_interrupted)
		_exit(1);
	cli_interrupted = 1;
}

void cli_catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking wait returns early and the caller looks at
	 * cli_interrupted. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}
