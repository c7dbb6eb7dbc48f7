/* job_int.h: what the files of the job decoder share (job.c, job_content.c,
 * job_tools.c); nothing outside them includes it. */
#ifndef PROMPTYARD_JOB_INT_H
#define PROMPTYARD_JOB_INT_H

#include "job.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* A user's value quoted in an error is cut to this many bytes (on a character
 * boundary) so that a megabyte model name cannot fill a result. */
#define QUOTE_MAX 64

/* What every field decoder needs; err/err_size are the caller's buffer. */
struct job_dec {
	const struct config *cfg;
	json_t *root;
	struct job *job;
	char *err;
	size_t err_size;
};

/* Each field decoder handles one field of SPEC §2: it returns 0 when the
 * field is absent or valid (and then stores it in the job), and -1 with the
 * error written when it is not. JSON null is not "absent": a field that is
 * present must have its type, so a null where a cap or a budget was meant is
 * caught rather than silently ignored. */

/* prompt or messages (job_content.c). */
int job_dec_content(struct job_dec *d);
/* response_format, tools and tool_choice (job_tools.c); tool_choice after
 * tools. */
int job_dec_response_format(struct job_dec *d);
int job_dec_tools(struct job_dec *d);
int job_dec_tool_choice(struct job_dec *d);

/* Writes the error (printf-style) to errstr, always as valid UTF-8. */
void job_fail(char *errstr, size_t errstr_size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Returns s, or a copy in out (at least QUOTE_MAX + 4 bytes) cut to QUOTE_MAX
 * bytes on a character boundary with "..." appended. s is valid UTF-8 (jansson
 * checked it), so the cut keeps it valid. */
const char *job_quote_cut(const char *s, char *out);
/* Tool and function names: OpenAI's rule, which the others accept too. */
bool job_tool_name_ok(const char *s);
/* Bytes of v serialized: tool definitions and calls are sent to the model
 * and counted with the contents (job.extra_bytes). */
size_t job_json_bytes(const json_t *v);

#endif
