/* mockcluster: librdkafka's in-process mock Kafka cluster as a standalone
 * program, so that tests can point the real worker and real clients at a
 * broker that needs no JVM and starts in milliseconds.
 *
 *   mockcluster [--brokers N] [--topic NAME:PARTITIONS]... [--no-stdin]
 *
 * Prints one line "bootstrap=HOST:PORT[,HOST:PORT...]" on stdout once the
 * brokers listen, then reads commands on stdin, one per line, each answered
 * by one line "ok" or "error: ...":
 *
 *   down ID | up ID        take broker ID (1..N) down or bring it back
 *   down-all | up-all      the same for every broker
 *   topic NAME PARTITIONS  create a topic
 *   quit                   exit
 *
 * It runs until "quit", EOF on stdin (the parent died or closed the pipe),
 * SIGTERM or SIGINT, then destroys the cluster and exits 0. With --no-stdin
 * stdin is ignored and only a signal stops it.
 *
 * The mock cluster in librdkafka 2.0.2 has no knob for the group's initial
 * rebalance delay (it waits 3 s before the first join completes); newer
 * versions export rd_kafka_mock_group_initial_rebalance_delay_ms(), which is
 * looked up at run time and used when present. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BROKERS                16
#define LINE_MAX_BYTES             1024
#define POLL_TICK_MS               200
#define INITIAL_REBALANCE_DELAY_MS 100

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void reply(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* Parses a decimal int in [lo, hi]; returns 0 and sets *out, or -1. */
static int parse_int(const char *s, long lo, long hi, int *out)
{
	char *end = NULL;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

/* Creates topic NAME with PARTITIONS partitions and a replication factor of
 * min(3, brokers). Returns 0, or -1 with a message in errstr. */
static int create_topic(rd_kafka_mock_cluster_t *mc, int brokers, const char *name, int partitions,
                        char *errstr, size_t errstr_size)
{
	rd_kafka_resp_err_t err;
	int replicas = brokers < 3 ? brokers : 3;

	err = rd_kafka_mock_topic_create(mc, name, partitions, replicas);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(errstr, errstr_size, "topic %.200s: %s", name, rd_kafka_err2str(err));
		return -1;
	}
	return 0;
}

/* "NAME:PARTITIONS" from the command line; returns 0, or -1 with errstr. */
static int create_topic_arg(rd_kafka_mock_cluster_t *mc, int brokers, const char *arg, char *errstr,
                            size_t errstr_size)
{
	char name[LINE_MAX_BYTES];
	const char *colon = strrchr(arg, ':');
	int partitions = 1;
	size_t len;

	if (colon == NULL) {
		len = strlen(arg);
	} else {
		len = (size_t)(colon - arg);
		if (parse_int(colon + 1, 1, 100000, &partitions) != 0) {
			snprintf(errstr, errstr_size, "--topic %.200s: bad partition count", arg);
			return -1;
		}
	}
	if (len == 0 || len >= sizeof(name)) {
		snprintf(errstr, errstr_size, "--topic %.200s: bad topic name", arg);
		return -1;
	}
	memcpy(name, arg, len);
	name[len] = '\0';
	return create_topic(mc, brokers, name, partitions, errstr, errstr_size);
}

static void set_broker(rd_kafka_mock_cluster_t *mc, int id, int up, char *errstr,
                       size_t errstr_size)
{
	rd_kafka_resp_err_t err;

	err = up ? rd_kafka_mock_broker_set_up(mc, id) : rd_kafka_mock_broker_set_down(mc, id);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		snprintf(errstr, errstr_size, "broker %d: %s", id, rd_kafka_err2str(err));
}

/* Runs one command line. Returns 1 when the command asks to quit, else 0;
 * the answer has been written to stdout either way. */
static int run_command(rd_kafka_mock_cluster_t *mc, int brokers, char *line)
{
	char errstr[512] = "";
	char *save = NULL;
	char *cmd = strtok_r(line, " \t\r", &save);
	char *arg1 = cmd != NULL ? strtok_r(NULL, " \t\r", &save) : NULL;
	char *arg2 = arg1 != NULL ? strtok_r(NULL, " \t\r", &save) : NULL;
	int id = 0;
	int partitions = 0;

	if (cmd == NULL) {
		reply("error: empty command");
		return 0;
	}
	if (strcmp(cmd, "quit") == 0) {
		reply("ok");
		return 1;
	}
	if (strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) {
		if (parse_int(arg1, 1, brokers, &id) != 0) {
			reply("error: %s needs a broker id 1..%d", cmd, brokers);
			return 0;
		}
		set_broker(mc, id, cmd[0] == 'u', errstr, sizeof(errstr));
	} else if (strcmp(cmd, "down-all") == 0 || strcmp(cmd, "up-all") == 0) {
		for (id = 1; id <= brokers && errstr[0] == '\0'; id++)
			set_broker(mc, id, cmd[0] == 'u', errstr, sizeof(errstr));
	} else if (strcmp(cmd, "topic") == 0) {
		if (arg1 == NULL || parse_int(arg2, 1, 100000, &partitions) != 0) {
			reply("error: usage: topic NAME PARTITIONS");
			return 0;
		}
		create_topic(mc, brokers, arg1, partitions, errstr, sizeof(errstr));
	} else {
		reply("error: unknown command '%.100s' (down ID, up ID, down-all, up-all, topic "
		      "NAME N, quit)",
		      cmd);
		return 0;
	}
	if (errstr[0] != '\0')
		reply("error: %s", errstr);
	else
		reply("ok");
	return 0;
}

/* Newer librdkafka only; absent from 2.0.2. Looked up so the same source
 * builds everywhere. memcpy avoids the object-to-function pointer cast that
 * ISO C does not define. */
static void lower_rebalance_delay(rd_kafka_mock_cluster_t *mc)
{
	void (*set_delay)(rd_kafka_mock_cluster_t *, int) = NULL;
	void *sym = dlsym(RTLD_DEFAULT, "rd_kafka_mock_group_initial_rebalance_delay_ms");

	if (sym == NULL)
		return;
	memcpy(&set_delay, &sym, sizeof(set_delay));
	set_delay(mc, INITIAL_REBALANCE_DELAY_MS);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: mockcluster [--brokers N] [--topic NAME:PARTITIONS]... [--no-stdin]\n");
}

/* Reads stdin until quit, EOF or a signal. Commands are split on newlines by
 * hand because stdio buffering and poll(2) do not mix. */
static void command_loop(rd_kafka_mock_cluster_t *mc, int brokers, int use_stdin)
{
	char buf[LINE_MAX_BYTES];
	size_t used = 0;
	int discarding = 0;

	while (!stop_requested) {
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		ssize_t n;
		char *nl;

		if (!use_stdin) {
			poll(NULL, 0, POLL_TICK_MS);
			continue;
		}
		if (poll(&pfd, 1, POLL_TICK_MS) <= 0)
			continue;
		n = read(STDIN_FILENO, buf + used, sizeof(buf) - 1 - used);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return; /* EOF or a broken stdin: the parent is gone */
		used += (size_t)n;
		buf[used] = '\0';
		while ((nl = memchr(buf, '\n', used)) != NULL) {
			size_t line_len = (size_t)(nl - buf) + 1;
			int quit = 0;

			*nl = '\0';
			if (discarding)
				discarding = 0;
			else
				quit = run_command(mc, brokers, buf);
			memmove(buf, buf + line_len, used - line_len);
			used -= line_len;
			if (quit)
				return;
		}
		if (used == sizeof(buf) - 1) {
			/* A line longer than any command: drop it and say so once. */
			reply("error: line too long");
			used = 0;
			discarding = 1;
		}
	}
}

int main(int argc, char **argv)
{
	char errstr[512];
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL;
	rd_kafka_mock_cluster_t *mc = NULL;
	struct sigaction sa;
	int brokers = 1;
	int use_stdin = 1;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
			if (parse_int(argv[++i], 1, MAX_BROKERS, &brokers) != 0) {
				fprintf(stderr, "mockcluster: --brokers must be 1..%d\n",
				        MAX_BROKERS);
				return 2;
			}
		} else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
			i++; /* created below, once the cluster exists */
		} else if (strcmp(argv[i], "--no-stdin") == 0) {
			use_stdin = 0;
		} else {
			usage();
			return 2;
		}
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The cluster needs a client instance for its bookkeeping; a producer
	 * that never produces anything will do. */
	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "mockcluster: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL) {
		fprintf(stderr, "mockcluster: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	conf = NULL; /* owned by rk */

	mc = rd_kafka_mock_cluster_new(rk, brokers);
	if (mc == NULL) {
		fprintf(stderr, "mockcluster: could not create the mock cluster\n");
		goto out;
	}
	lower_rebalance_delay(mc);

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--brokers") == 0) {
			i++;
		} else if (strcmp(argv[i], "--topic") == 0) {
			if (create_topic_arg(mc, brokers, argv[++i], errstr, sizeof(errstr)) != 0) {
				fprintf(stderr, "mockcluster: %s\n", errstr);
				rc = 2;
				goto out;
			}
		}
	}

	printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);

	command_loop(mc, brokers, use_stdin);
	rc = 0;
out:
	if (mc != NULL)
		rd_kafka_mock_cluster_destroy(mc);
	if (rk != NULL)
		rd_kafka_destroy(rk);
	return rc;
}
