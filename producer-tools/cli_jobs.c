/* cli_jobs: reading a JSON Lines file of jobs for submit, estimate and dev.
 *
 * A line is either a native job (SPEC §2) or an OpenAI Batch request
 *   {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions",
 *    "body": {"model": ..., "messages": [...], "max_tokens": ..., ...}}
 * which becomes the job {"id": custom_id, "messages": ..., ...}. Every line is
 * checked by job_decode(), the worker's own validation, so that a file that
 * passes here is never an invalid_job there. Nothing is produced unless every
 * line is good: a half-submitted batch is harder to recover than none. */
#include "cli.h"

#include "buf.h"
#include "job.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPORTED 20

/* What a load run noticed once, to be said once. */
struct notes {
	json_t *unknown_models; /* name -> count of lines */
	json_t *ignored_fields; /* body field -> count of lines */
	size_t json_schema;     /* response_format json_schema sent as json_object */
};

static void count(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	json_object_set_new(obj, key, json_integer(v ? json_integer_value(v) + 1 : 1));
}

/* OpenAI content: a string, or an array of parts of which only text ones
 * can be sent on (joined by newlines). Returns a new string or NULL with err. */
static json_t *convert_content(json_t *content, size_t i, char *err, size_t err_size)
{
	if (json_is_string(content))
		return json_incref(content);
	if (!json_is_array(content)) {
		snprintf(err, err_size,
		         "body.messages[%zu].content: must be a string or an array of "
		         "text parts",
		         i);
		return NULL;
	}
	struct buf b = {0};
	size_t j;
	json_t *part;
	json_array_foreach (content, j, part) {
		const char *type = json_string_value(json_object_get(part, "type"));
		json_t *text = json_object_get(part, "text");
		if (!type || strcmp(type, "text") != 0 || !json_is_string(text)) {
			snprintf(err, err_size,
			         "body.messages[%zu].content[%zu]: only {\"type\":\"text\"} parts "
			         "can "
			         "be sent (got %s)",
			         i, j, type ? type : "no type");
			buf_free(&b);
			return NULL;
		}
		if (b.len)
			buf_puts(&b, "\n");
		buf_append(&b, json_string_value(text), json_string_length(text));
	}
	json_t *s = json_stringn(b.data ? b.data : "", b.len);
	buf_free(&b);
	return s;
}

/* An OpenAI Batch request line -> a native job (new), or NULL with err. */
static json_t *convert_batch(const struct config *cfg, json_t *line, struct notes *notes, char *err,
                             size_t err_size)
{
	json_t *job = json_object();
	json_t *msgs = NULL;
	json_t *custom_id = json_object_get(line, "custom_id");
	json_t *method = json_object_get(line, "method");
	json_t *url = json_object_get(line, "url");
	json_t *body = json_object_get(line, "body");
	const char *key;
	json_t *v;

	if (!json_is_string(custom_id)) {
		snprintf(err, err_size, "custom_id: must be a string");
		goto fail;
	}
	if (method && (!json_is_string(method) || strcmp(json_string_value(method), "POST") != 0)) {
		snprintf(err, err_size, "method: must be \"POST\"");
		goto fail;
	}
	if (url) {
		const char *u = json_string_value(url);
		size_t n = u ? strlen(u) : 0;
		if (!u || n < 17 || strcmp(u + n - 17, "/chat/completions") != 0) {
			snprintf(err, err_size,
			         "url: only /v1/chat/completions requests can be routed (got "
			         "\"%.64s\")",
			         u ? u : "not a string");
			goto fail;
		}
	}
	if (!json_is_object(body)) {
		snprintf(err, err_size, "body: must be an object");
		goto fail;
	}
	json_object_set(job, "id", custom_id);

	json_t *in = json_object_get(body, "messages");
	if (!json_is_array(in)) {
		snprintf(err, err_size, "body.messages: must be an array");
		goto fail;
	}
	msgs = json_array();
	size_t i;
	json_t *m;
	json_array_foreach (in, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		if (!role) {
			snprintf(err, err_size, "body.messages[%zu].role: must be a string", i);
			goto fail;
		}
		/* "developer" is OpenAI's newer name for the system role. */
		if (strcmp(role, "developer") == 0)
			role = "system";
		if (strcmp(role, "system") != 0 && strcmp(role, "user") != 0 &&
		    strcmp(role, "assistant") != 0) {
			snprintf(err, err_size,
			         "body.messages[%zu].role: \"%.32s\" cannot be routed (system, "
			         "developer, user or assistant)",
			         i, role);
			goto fail;
		}
		json_t *content = convert_content(json_object_get(m, "content"), i, err, err_size);
		if (!content)
			goto fail;
		json_array_append_new(msgs,
		                      json_pack("{s:s, s:o}", "role", role, "content", content));
	}
	json_object_set_new(job, "messages", msgs);
	msgs = NULL;

	json_object_foreach (body, key, v) {
		if (strcmp(key, "messages") == 0)
			continue;
		if (strcmp(key, "model") == 0) {
			const char *name = json_string_value(v);
			if (name && config_model_index(cfg, name) >= 0)
				json_object_set(job, "model", v);
			else
				count(notes->unknown_models, name ? name : "(not a string)");
		} else if (strcmp(key, "max_tokens") == 0 ||
		           strcmp(key, "max_completion_tokens") == 0) {
			/* max_completion_tokens is the newer name and wins. */
			if (strcmp(key, "max_completion_tokens") == 0 ||
			    !json_object_get(body, "max_completion_tokens"))
				json_object_set(job, "max_tokens", v);
		} else if (strcmp(key, "temperature") == 0 || strcmp(key, "top_p") == 0 ||
		           strcmp(key, "stop") == 0 || strcmp(key, "metadata") == 0) {
			json_object_set(job, key, v);
		} else if (strcmp(key, "response_format") == 0) {
			const char *type = json_string_value(json_object_get(v, "type"));
			if (type && strcmp(type, "json_schema") == 0) {
				notes->json_schema++;
				json_object_set_new(job, key,
				                    json_pack("{s:s}", "type", "json_object"));
			} else {
				json_object_set(job, key, v);
			}
		} else {
			count(notes->ignored_fields, key);
		}
	}
	return job;
fail:
	json_decref(msgs);
	json_decref(job);
	return NULL;
}

static void report(const char *sub, const char *path, int line, size_t *bad, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

static void report(const char *sub, const char *path, int line, size_t *bad, const char *fmt, ...)
{
	if (++*bad > MAX_REPORTED)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "promptyard %s: %s:%d: ", sub, path, line);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void add_job(struct cli_jobs *out, char *value, size_t len, const char *id, int line)
{
	if (out->n == out->cap) {
		out->cap = out->cap ? out->cap * 2 : 256;
		out->v = xrealloc(out->v, out->cap * sizeof *out->v);
	}
	struct cli_job *j = &out->v[out->n++];
	j->value = value;
	j->len = len;
	j->id = xstrdup(id);
	j->line = line;
}

/* Checks one line and, if good, adds it to out. Returns 0 or -1 (reported). */
static int load_line(const char *sub, const struct config *cfg, const char *path, int lineno,
                     char *text, size_t len, const struct cli_job_defaults *d, size_t *rotation,
                     json_t *seen, struct notes *notes, size_t *bad, struct cli_jobs *out)
{
	json_error_t jerr;
	char err[512];
	struct job job;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *conv = NULL;
	char *value = NULL;
	size_t value_len = 0;
	bool batch = false;
	int rc = -1;

	if (!root) {
		report(sub, path, lineno, bad, "value: invalid JSON at column %d: %s", jerr.column,
		       jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		report(sub, path, lineno, bad, "value: must be a JSON object");
		goto out;
	}
	/* A batch request has custom_id and body; a native job that merely
	 * carries a custom_id field (unknown fields are ignored) has an id. */
	if (json_object_get(root, "custom_id") &&
	    (json_object_get(root, "body") || !json_object_get(root, "id"))) {
		batch = true;
		conv = convert_batch(cfg, root, notes, err, sizeof err);
		if (!conv) {
			report(sub, path, lineno, bad, "%s", err);
			goto out;
		}
	}
	json_t *obj = conv ? conv : root;
	bool changed = batch;
	if (d && d->budget && !json_object_get(obj, "budget")) {
		json_object_set_new(obj, "budget", json_string(d->budget));
		changed = true;
	}
	if (d && !json_object_get(obj, "strategy")) {
		const char *s = d->strategy;
		if (!s && d->rotate_strategies && d->rotate_strategies[0]) {
			s = d->rotate_strategies[*rotation];
			if (!d->rotate_strategies[++*rotation])
				*rotation = 0;
		}
		if (s) {
			json_object_set_new(obj, "strategy", json_string(s));
			changed = true;
		}
	}
	if (changed) {
		value = json_dumps(obj, JSON_COMPACT);
		value_len = strlen(value);
	} else {
		/* Untouched: the exact bytes the user wrote. */
		value = xstrndup(text, len);
		value_len = len;
	}
	if (job_decode(cfg, value, value_len, &job, err, sizeof err) != 0) {
		if (batch)
			report(sub, path, lineno, bad, "custom_id \"%.64s\": %s",
			       job.id ? job.id : "?", err);
		else
			report(sub, path, lineno, bad, "%s", err);
		job_clear(&job);
		goto out;
	}
	json_t *prev = json_object_get(seen, job.id);
	if (prev) {
		report(sub, path, lineno, bad, "%s: \"%.64s\" is already the id of line %lld",
		       batch ? "custom_id" : "id", job.id, (long long)json_integer_value(prev));
		job_clear(&job);
		goto out;
	}
	json_object_set_new(seen, job.id, json_integer(lineno));
	add_job(out, value, value_len, job.id, lineno);
	value = NULL;
	out->batch += batch;
	job_clear(&job);
	rc = 0;
out:
	free(value);
	json_decref(conv);
	json_decref(root);
	return rc;
}

static void say_notes(const char *sub, const struct notes *n)
{
	const char *key;
	json_t *v;
	json_object_foreach (n->unknown_models, key, v) {
		fprintf(stderr,
		        "promptyard %s: note: body.model \"%s\" (%lld line%s) is not a catalog "
		        "model: "
		        "dropped, those jobs are routed by strategy\n",
		        sub, key, (long long)json_integer_value(v),
		        json_integer_value(v) == 1 ? "" : "s");
	}
	if (json_object_size(n->ignored_fields)) {
		struct buf b = {0};
		json_object_foreach (n->ignored_fields, key, v) {
			buf_printf(&b, "%s%s", b.len ? ", " : "", key);
		}
		fprintf(stderr,
		        "promptyard %s: note: OpenAI body fields with no job equivalent were "
		        "ignored: %s\n",
		        sub, b.data);
		buf_free(&b);
	}
	if (n->json_schema)
		fprintf(stderr,
		        "promptyard %s: note: response_format json_schema (%zu lines) is sent as "
		        "json_object: the schema itself is not enforced\n",
		        sub, n->json_schema);
}

int cli_jobs_load(const char *sub, const struct config *cfg, const char *path,
                  const struct cli_job_defaults *d, struct cli_jobs *out)
{
	bool is_stdin = strcmp(path, "-") == 0;
	const char *name = is_stdin ? "<stdin>" : path;
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	struct notes notes = {json_object(), json_object(), 0};
	json_t *seen = json_object();
	char *line = NULL;
	size_t cap = 0, bad = 0, rotation = 0;
	ssize_t got;
	int lineno = 0, rc = 0;

	memset(out, 0, sizeof *out);
	if (!f) {
		fprintf(stderr, "promptyard %s: %s: %s\n", sub, path, strerror(errno));
		rc = 2;
		goto out;
	}
	while ((got = getline(&line, &cap, f)) >= 0) {
		size_t len = (size_t)got;
		lineno++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		size_t lead = 0;
		while (lead < len && (line[lead] == ' ' || line[lead] == '\t'))
			lead++;
		if (lead == len)
			continue; /* blank */
		load_line(sub, cfg, name, lineno, line, len, d, &rotation, seen, &notes, &bad, out);
	}
	if (ferror(f)) {
		fprintf(stderr, "promptyard %s: %s: %s\n", sub, name, strerror(errno));
		rc = 1;
		goto out;
	}
	if (bad) {
		if (bad > MAX_REPORTED)
			fprintf(stderr, "promptyard %s: %s: ... and %zu more bad lines\n", sub,
			        name, bad - MAX_REPORTED);
		fprintf(stderr, "promptyard %s: %s: %zu bad line%s of %zu: nothing was sent\n", sub,
		        name, bad, bad == 1 ? "" : "s", bad + out->n);
		rc = 2;
		goto out;
	}
	say_notes(sub, &notes);
out:
	if (rc != 0)
		cli_jobs_free(out);
	free(line);
	if (f && !is_stdin)
		fclose(f);
	json_decref(seen);
	json_decref(notes.unknown_models);
	json_decref(notes.ignored_fields);
	return rc;
}

void cli_jobs_free(struct cli_jobs *jobs)
{
	for (size_t i = 0; i < jobs->n; i++) {
		free(jobs->v[i].value);
		free(jobs->v[i].id);
	}
	free(jobs->v);
	memset(jobs, 0, sizeof *jobs);
}
