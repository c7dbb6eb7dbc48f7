/* cli_progress: progress on stderr, as a bar redrawn in place on a terminal
 * and as an occasional plain line otherwise (logs and CI keep every line). */
#include "cli.h"

#include "timeutil.h"

#include <stdio.h>
#include <string.h>

#define BAR_WIDTH        28
#define TTY_REDRAW_MS    100
#define PLAIN_LINE_EVERY 5000 /* ms between plain lines */

void cli_progress_start(struct cli_progress *p, const char *label, uint64_t total)
{
	memset(p, 0, sizeof *p);
	p->label = label;
	p->total = total;
	p->tty = cli_tty();
	p->start_ms = time_mono_ms();
	p->last_ms = p->start_ms;
}

static void fmt_duration(char *out, size_t size, double s)
{
	long t = (long)(s + 0.5);
	if (t >= 3600)
		snprintf(out, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(out, size, "%ld:%02ld", t / 60, t % 60);
}

static void draw(struct cli_progress *p, bool final)
{
	int64_t now = time_mono_ms();
	double elapsed = (double)(now - p->start_ms) / 1000.0;
	double rate = (double)p->done / (elapsed > 0.001 ? elapsed : 0.001);
	char eta[32] = "", took[32];
	fmt_duration(took, sizeof took, elapsed);
	if (p->total && rate > 0 && p->done < p->total)
		fmt_duration(eta, sizeof eta, (double)(p->total - p->done) / rate);
	char extra[96] = "";
	if (p->extra[0])
		snprintf(extra, sizeof extra, "  %s", p->extra);

	if (p->tty) {
		char bar[BAR_WIDTH + 1];
		size_t fill =
		        p->total ? (size_t)((double)BAR_WIDTH * (double)p->done / (double)p->total)
		                 : 0;
		if (fill > BAR_WIDTH)
			fill = BAR_WIDTH;
		memset(bar, '#', fill);
		memset(bar + fill, '.', BAR_WIDTH - fill);
		bar[BAR_WIDTH] = '\0';
		if (p->total)
			fprintf(stderr, "\r\033[K%s [%s] %llu/%llu %3d%%  %.1f/s  %s %s%s",
			        p->label, bar, (unsigned long long)p->done,
			        (unsigned long long)p->total,
			        (int)(100.0 * (double)p->done / (double)p->total), rate,
			        final || !eta[0] ? "in" : "ETA", final || !eta[0] ? took : eta,
			        extra);
		else
			fprintf(stderr, "\r\033[K%s %llu  %.1f/s  %s%s", p->label,
			        (unsigned long long)p->done, rate, took, extra);
		if (final)
			fputc('\n', stderr);
	} else if (p->total) {
		fprintf(stderr, "%s: %llu/%llu (%d%%), %.1f/s, %s %s%s\n", p->label,
		        (unsigned long long)p->done, (unsigned long long)p->total,
		        (int)(100.0 * (double)p->done / (double)p->total), rate,
		        final || !eta[0] ? "elapsed" : "ETA", final || !eta[0] ? took : eta, extra);
	} else {
		fprintf(stderr, "%s: %llu, %.1f/s, elapsed %s%s\n", p->label,
		        (unsigned long long)p->done, rate, took, extra);
	}
	fflush(stderr);
	p->last_ms = now;
	p->drawn = true;
}

void cli_progress_update(struct cli_progress *p, uint64_t done)
{
	p->done = done;
	if (p->quiet)
		return;
	int64_t every = p->tty ? TTY_REDRAW_MS : PLAIN_LINE_EVERY;
	if (time_mono_ms() - p->last_ms >= every || (p->tty && !p->drawn))
		draw(p, false);
}

void cli_progress_finish(struct cli_progress *p)
{
	if (!p->quiet)
		draw(p, true);
}
