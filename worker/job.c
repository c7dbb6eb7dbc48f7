/* job: decoding and validation of one input message (SPEC §2).
 *
 * The checks run in the order of the SPEC §2 table, so the error names the
 * first offending field in that order. Every string the job keeps points into
 * job->root; only the messages and models arrays are allocated. */
#include "job.h"

#include "buf.h"
#include "jload.h"
#include "jsonschema.h"
#include "money.h"
#include "timeutil.h"

#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A user's value quoted in an error is cut to this many bytes (on a character
 * boundary) so that a megabyte model name cannot fill a result. */
#define QUOTE_MAX 64

const char *role_name(enum role r)
{
	switch (r) {
	case ROLE_SYSTEM: return "system";
	case ROLE_USER: return "user";
	case ROLE_ASSISTANT: return "assistant";
	case ROLE_TOOL: return "tool";
	}
	return "?";
}

/* ---------------------------------------------------------------- errors */

/* Replaces every byte that does not belong to a well-formed UTF-8 sequence
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF) with '?'.
 * The error text ends up as a JSON string in the result and the DLQ record,
 * where invalid UTF-8 cannot go; snprintf truncation or a jansson message
 * quoting raw input could otherwise cut a character in half. */
static void utf8_scrub(char *s)
{
	unsigned char *p = (unsigned char *)s, *end = p + strlen(s);
	while (p < end) {
		size_t n = utf8_seq_len(p, end);
		if (n == 0)
			*p++ = '?';
		else
			p += n;
	}
}

/* Writes the error (printf-style) to errstr, always as valid UTF-8. */
static void fail(char *errstr, size_t errstr_size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;
	if (!errstr || errstr_size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errstr, errstr_size, fmt, ap);
	va_end(ap);
	utf8_scrub(errstr);
}

/* Returns s, or a copy in out (at least QUOTE_MAX + 4 bytes) cut to QUOTE_MAX
 * bytes on a character boundary with "..." appended. s is valid UTF-8 (jansson
 * checked it), so the cut keeps it valid. */
static const char *quote_cut(const char *s, char *out)
{
	size_t len = strlen(s), n = QUOTE_MAX;
	if (len <= QUOTE_MAX)
		return s;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	memcpy(out, s, n);
	memcpy(out + n, "...", 4);
	return out;
}

/* ---------------------------------------------------------------- fields */

/* What every field decoder needs; err/err_size are the caller's buffer. */
struct dec {
	const struct config *cfg;
	json_t *root;
	struct job *job;
	char *err;
	size_t err_size;
};

/* Each decoder below handles one field of SPEC §2: it returns 0 when the field
 * is absent or valid (and then stores it in the job), and -1 with the error
 * written when it is not. JSON null is not "absent": a field that is present
 * must have its type, so a null where a cap or a budget was meant is caught
 * rather than silently ignored. */

static int dec_id(struct dec *d)
{
	json_t *v = json_object_get(d->root, "id");
	if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > JOB_ID_MAX) {
		fail(d->err, d->err_size, "id: must be a string of 1 to %d bytes", JOB_ID_MAX);
		return -1;
	}
	d->job->id = json_string_value(v);
	return 0;
}

/* ---------------------------------------------------------------- content parts */

/* Is b64 standard base64 with padding (no blanks, no line breaks)? Sets
 * *decoded to the bytes it holds. */
static bool base64_valid(const char *b64, size_t len, size_t *decoded)
{
	if (len == 0 || len % 4 != 0)
		return false;
	size_t pad = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)b64[i];
		bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		             (c >= '0' && c <= '9') || c == '+' || c == '/';
		if (c == '=' && i >= len - 2) {
			pad++;
			continue;
		}
		if (!alpha || pad)
			return false;
	}
	*decoded = len / 4 * 3 - pad;
	return true;
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int64_t job_base64_decode(const char *b64, size_t len, unsigned char *out)
{
	size_t n = 0, decoded = 0;
	if (!base64_valid(b64, len, &decoded))
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		for (int k = 0; k < 4; k++)
			v[k] = b64[i + k] == '=' ? 0 : b64_value((unsigned char)b64[i + k]);
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		             (uint32_t)v[3];
		unsigned char bytes[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8),
		                          (unsigned char)w};
		for (int k = 0; k < 3 && n < decoded; k++, n++)
			if (out)
				out[n] = bytes[k];
	}
	return (int64_t)decoded;
}

/* The media types a part may have (SPEC §13), as static strings, and the
 * first bytes each starts with. */
static const struct media {
	const char *type;
	enum part_type part;
	const char *magic;
	size_t magic_len;
	size_t magic_at;
} medias[] = {
        {"image/png", PART_IMAGE, "\x89PNG\r\n\x1a\n", 8, 0},
        {"image/jpeg", PART_IMAGE, "\xff\xd8\xff", 3, 0},
        {"image/gif", PART_IMAGE, "GIF8", 4, 0},
        {"image/webp", PART_IMAGE, "WEBP", 4, 8},
        {"application/pdf", PART_DOCUMENT, "%PDF-", 5, 0},
};
#define N_MEDIAS (sizeof medias / sizeof medias[0])

/* The media type named (case-insensitive, parameters after ';' ignored), or NULL. */
static const struct media *media_named(const char *name, size_t len)
{
	const char *semi = memchr(name, ';', len);
	if (semi)
		len = (size_t)(semi - name);
	while (len > 0 && name[len - 1] == ' ')
		len--;
	for (size_t i = 0; i < N_MEDIAS; i++)
		if (strlen(medias[i].type) == len && strncasecmp(medias[i].type, name, len) == 0)
			return &medias[i];
	return NULL;
}

/* The media type the bytes start like, or NULL. */
static const struct media *media_sniffed(const unsigned char *b, size_t len)
{
	for (size_t i = 0; i < N_MEDIAS; i++) {
		const struct media *m = &medias[i];
		if (len >= m->magic_at + m->magic_len &&
		    memcmp(b + m->magic_at, m->magic, m->magic_len) == 0 &&
		    (m->magic_at == 0 || memcmp(b, "RIFF", 4) == 0))
			return m;
	}
	return NULL;
}

int64_t job_count_pdf_pages(const unsigned char *pdf, size_t len)
{
	static const char key[] = "/Type";
	int64_t pages = 0;
	for (size_t i = 0; i + sizeof key - 1 < len; i++) {
		if (pdf[i] != '/' || memcmp(pdf + i, key, sizeof key - 1) != 0)
			continue;
		size_t j = i + sizeof key - 1;
		while (j < len && (pdf[j] == ' ' || pdf[j] == '\r' || pdf[j] == '\n' ||
		                   pdf[j] == '\t' || pdf[j] == '\f' || pdf[j] == '\0'))
			j++;
		if (j + 5 > len || memcmp(pdf + j, "/Page", 5) != 0)
			continue;
		j += 5;
		/* "/Pages" is the tree, "/PageLabel"... are not pages. */
		if (j < len &&
		    ((pdf[j] >= 'A' && pdf[j] <= 'Z') || (pdf[j] >= 'a' && pdf[j] <= 'z') ||
		     (pdf[j] >= '0' && pdf[j] <= '9')))
			continue;
		pages++;
	}
	return pages;
}

int64_t job_media_tokens(const struct job *job, const struct model_conf *m)
{
	int64_t t = (int64_t)job->n_images * m->image_tokens + job->pdf_pages * m->pdf_page_tokens +
	            (job->pdf_unreadable_bytes + 2) / 3;
	return t;
}

/* Counts a document's pages (or its bytes, when they cannot be counted). */
static void count_document(struct job *job, struct job_part *part, const unsigned char *bytes,
                           size_t len)
{
	part->pdf_pages = job_count_pdf_pages(bytes, len);
	if (part->pdf_pages > 0)
		job->pdf_pages += part->pdf_pages;
	else
		job->pdf_unreadable_bytes += (int64_t)len;
}

/* Checks an inline part's base64 and media type against its bytes, and
 * counts a document's pages. The field name is "messages[i].content[k]". */
static int part_inline(struct dec *d, struct job_part *part, const char *field)
{
	const struct media *m = media_named(part->media_type, strlen(part->media_type));
	if (!m || m->part != part->type) {
		fail(d->err, d->err_size, "%s.media_type: must be %s", field,
		     part->type == PART_IMAGE ? "image/png, image/jpeg, image/gif or image/webp"
		                              : "application/pdf");
		return -1;
	}
	part->media_type = m->type;
	if (!base64_valid(part->data, part->data_len, &part->decoded_len)) {
		fail(d->err, d->err_size,
		     "%s.data: must be standard base64 with padding (no line breaks)", field);
		return -1;
	}
	/* The first bytes tell whether the data is what media_type says: a
	 * provider refuses a mismatch with a 400 that would end the job later. */
	unsigned char head[16];
	size_t head_len = part->data_len < 16 ? part->data_len : 16;
	int64_t got = job_base64_decode(part->data, head_len, head);
	if (got < 0 || media_sniffed(head, (size_t)got) != m) {
		const struct media *real = got > 0 ? media_sniffed(head, (size_t)got) : NULL;
		fail(d->err, d->err_size, "%s.data: is not %s%s%s", field, m->type,
		     real ? " but " : "", real ? real->type : "");
		return -1;
	}
	if (part->type == PART_DOCUMENT) {
		unsigned char *bytes = xmalloc(part->decoded_len + 1);
		job_base64_decode(part->data, part->data_len, bytes);
		count_document(d->job, part, bytes, part->decoded_len);
		free(bytes);
	}
	return 0;
}

/* A data: URL ("data:image/png;base64,....") into media type and data. */
static int data_url(struct dec *d, const char *url, struct job_part *part, const char *field)
{
	const char *comma = strchr(url, ',');
	const char *b64 = comma ? strstr(url, ";base64,") : NULL;
	if (!comma || b64 != comma - 7) {
		fail(d->err, d->err_size, "%s: a data: URL must be data:<media type>;base64,<data>",
		     field);
		return -1;
	}
	const struct media *m = media_named(url + 5, (size_t)(b64 - url - 5));
	if (!m) {
		fail(d->err, d->err_size, "%s: unknown media type in the data: URL", field);
		return -1;
	}
	part->media_type = m->type;
	part->data = comma + 1;
	part->data_len = strlen(comma + 1);
	return 0;
}

static int part_url(struct dec *d, const char *url, struct job_part *part, const char *field)
{
	if (strncmp(url, "data:", 5) == 0)
		return data_url(d, url, part, field);
	if (strncmp(url, "https://", 8) != 0 || !url[8] || strpbrk(url, " \t\r\n")) {
		fail(d->err, d->err_size, "%s: must be an https:// URL or a data: URL", field);
		return -1;
	}
	part->url = url;
	d->job->n_url_parts++;
	return 0;
}

/* Decodes one part of messages[mi].content[k] into part. */
static int dec_part(struct dec *d, json_t *v, size_t mi, size_t k, enum role role,
                    struct job_part *part)
{
	char field[64];
	snprintf(field, sizeof field, "messages[%zu].content[%zu]", mi, k);
	part->msg = mi;
	part->index = k;
	const char *type = json_is_object(v) ? json_string_value(json_object_get(v, "type")) : NULL;
	if (!type) {
		fail(d->err, d->err_size, "%s: must be an object with a string \"type\"", field);
		return -1;
	}
	if (strcmp(type, "text") == 0) {
		json_t *t = json_object_get(v, "text");
		if (!json_is_string(t)) {
			fail(d->err, d->err_size, "%s.text: must be a string", field);
			return -1;
		}
		part->type = PART_TEXT;
		part->text = json_string_value(t);
		part->text_len = json_string_length(t);
		return 0;
	}
	if (role != ROLE_USER) {
		fail(d->err, d->err_size, "%s: only user messages may hold images or documents",
		     field);
		return -1;
	}
	json_t *url = NULL, *data = NULL, *media = NULL;
	if (strcmp(type, "image") == 0 || strcmp(type, "document") == 0) {
		part->type = type[0] == 'i' ? PART_IMAGE : PART_DOCUMENT;
		url = json_object_get(v, "url");
		data = json_object_get(v, "data");
		media = json_object_get(v, "media_type");
		if ((url == NULL) == (data == NULL)) {
			fail(d->err, d->err_size, "%s: exactly one of url and data is required",
			     field);
			return -1;
		}
		if ((url && !json_is_string(url)) || (data && !json_is_string(data)) ||
		    (media && !json_is_string(media))) {
			fail(d->err, d->err_size, "%s: url, data and media_type must be strings",
			     field);
			return -1;
		}
		if (url) {
			char f[80];
			snprintf(f, sizeof f, "%s.url", field);
			if (part_url(d, json_string_value(url), part, f) != 0)
				return -1;
		} else {
			part->data = json_string_value(data);
			part->data_len = json_string_length(data);
			part->media_type = media                         ? json_string_value(media)
			                   : part->type == PART_DOCUMENT ? "application/pdf"
			                                                 : NULL;
			if (!part->media_type) {
				fail(d->err, d->err_size, "%s.media_type: is required with data",
				     field);
				return -1;
			}
		}
	} else if (strcmp(type, "image_url") == 0) {
		/* OpenAI's shape: {"type":"image_url","image_url":{"url":U,"detail":D}}. */
		json_t *iu = json_object_get(v, "image_url");
		json_t *u = json_is_object(iu) ? json_object_get(iu, "url") : iu;
		json_t *detail = json_is_object(iu) ? json_object_get(iu, "detail") : NULL;
		part->type = PART_IMAGE;
		if (!json_is_string(u) || (detail && !json_is_string(detail))) {
			fail(d->err, d->err_size, "%s.image_url.url: must be a string", field);
			return -1;
		}
		part->detail = detail ? json_string_value(detail) : NULL;
		char f[80];
		snprintf(f, sizeof f, "%s.image_url.url", field);
		if (part_url(d, json_string_value(u), part, f) != 0)
			return -1;
		if (part->url == NULL && strncmp(part->media_type, "image/", 6) != 0) {
			fail(d->err, d->err_size, "%s.image_url.url: is not an image", field);
			return -1;
		}
	} else if (strcmp(type, "file") == 0) {
		/* OpenAI's shape: {"type":"file","file":{"file_data":"data:application/pdf;base64,...",
		 * "filename":N}}; file_id names a file in one provider's store only. */
		json_t *f = json_object_get(v, "file");
		json_t *fd = json_is_object(f) ? json_object_get(f, "file_data") : NULL;
		json_t *fn = json_is_object(f) ? json_object_get(f, "filename") : NULL;
		part->type = PART_DOCUMENT;
		if (json_is_object(f) && json_object_get(f, "file_id") && !fd) {
			fail(d->err, d->err_size,
			     "%s.file.file_id: is not supported (a file of one provider's store); "
			     "send file_data",
			     field);
			return -1;
		}
		if (!json_is_string(fd) || (fn && !json_is_string(fn))) {
			fail(d->err, d->err_size, "%s.file.file_data: must be a string", field);
			return -1;
		}
		part->filename = fn ? json_string_value(fn) : NULL;
		const char *s = json_string_value(fd);
		if (strncmp(s, "data:", 5) == 0) {
			char fld[80];
			snprintf(fld, sizeof fld, "%s.file.file_data", field);
			if (data_url(d, s, part, fld) != 0)
				return -1;
		} else {
			part->data = s;
			part->data_len = json_string_length(fd);
			part->media_type = "application/pdf";
		}
	} else {
		fail(d->err, d->err_size,
		     "%s.type: must be \"text\", \"image\", \"document\", \"image_url\" or "
		     "\"file\"",
		     field);
		return -1;
	}
	if (part->type == PART_IMAGE) {
		d->job->n_images++;
		d->job->caps |= CAP_VISION;
	} else {
		d->job->n_documents++;
		d->job->caps |= CAP_PDF;
	}
	return part->data ? part_inline(d, part, field) : 0;
}

/* Keeps a joined text (owned by the job). */
static const char *job_keep_text(struct job *job, char *text)
{
	job->texts = xrealloc(job->texts, (job->n_texts + 1) * sizeof *job->texts);
	job->texts[job->n_texts++] = text;
	return text;
}

/* content as an array of parts: the parts go to job->parts (reserved by the
 * caller: one per element), the message's text is the text parts joined. */
static int dec_parts(struct dec *d, json_t *content, size_t i, struct job_message *out)
{
	struct job *job = d->job;
	if (json_array_size(content) == 0) {
		fail(d->err, d->err_size, "messages[%zu].content: must not be an empty array", i);
		return -1;
	}
	out->parts = &job->parts[job->n_parts];
	struct buf text = {0};
	for (size_t k = 0; k < json_array_size(content); k++) {
		struct job_part *part = &job->parts[job->n_parts];
		memset(part, 0, sizeof *part);
		if (dec_part(d, json_array_get(content, k), i, k, out->role, part) != 0) {
			buf_free(&text);
			return -1;
		}
		job->n_parts++;
		out->n_parts++;
		if (part->type == PART_TEXT) {
			if (text.len)
				buf_puts(&text, "\n");
			buf_append(&text, part->text, part->text_len);
		}
	}
	out->content_len = text.len;
	out->content = text.data ? job_keep_text(job, buf_take(&text)) : "";
	return 0;
}

/* Tool and function names: OpenAI's rule, which the others accept too. */
static bool tool_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* Bytes of v serialized: tool definitions and calls are sent to the model
 * and counted with the contents (job.extra_bytes). */
static size_t json_bytes(const json_t *v)
{
	return json_dumpb(v, NULL, 0, JSON_COMPACT);
}

/* An assistant's tool_calls: [{"id","type":"function","function":{"name","arguments"}}]. */
static int dec_tool_calls(struct dec *d, json_t *calls, size_t i)
{
	if (!json_is_array(calls) || json_array_size(calls) == 0) {
		fail(d->err, d->err_size, "messages[%zu].tool_calls: must be a non-empty array", i);
		return -1;
	}
	for (size_t k = 0; k < json_array_size(calls); k++) {
		json_t *c = json_array_get(calls, k);
		json_t *f = json_object_get(c, "function");
		const char *id = json_string_value(json_object_get(c, "id"));
		const char *type = json_string_value(json_object_get(c, "type"));
		const char *name = json_string_value(json_object_get(f, "name"));
		json_t *args = json_object_get(f, "arguments");
		if (!json_is_object(c) || !id || !*id || (type && strcmp(type, "function") != 0) ||
		    !json_is_object(f)) {
			fail(d->err, d->err_size,
			     "messages[%zu].tool_calls[%zu]: must be {\"id\", \"type\": "
			     "\"function\", "
			     "\"function\": {\"name\", \"arguments\"}}",
			     i, k);
			return -1;
		}
		if (!name || !tool_name_ok(name)) {
			fail(d->err, d->err_size,
			     "messages[%zu].tool_calls[%zu].function.name: must be 1 to 64 "
			     "letters, "
			     "digits, _ or -",
			     i, k);
			return -1;
		}
		/* Anthropic and Gemini take the arguments as an object. */
		json_t *parsed = json_is_string(args) ? json_loads(json_string_value(args),
		                                                   JSON_REJECT_DUPLICATES, NULL)
		                                      : NULL;
		bool ok = json_is_object(parsed);
		json_decref(parsed);
		if (!ok) {
			fail(d->err, d->err_size,
			     "messages[%zu].tool_calls[%zu].function.arguments: must be a string "
			     "holding a JSON object",
			     i, k);
			return -1;
		}
	}
	d->job->extra_bytes += json_bytes(calls);
	d->job->caps |= CAP_TOOLS;
	return 0;
}

/* Whether a tool call with this id came before message i. */
static bool tool_call_known(const struct job *job, size_t i, const char *id)
{
	for (size_t m = 0; m < i; m++) {
		json_t *calls = job->messages[m].tool_calls;
		for (size_t k = 0; calls && k < json_array_size(calls); k++)
			if (strcmp(json_string_value(
			                   json_object_get(json_array_get(calls, k), "id")),
			           id) == 0)
				return true;
	}
	return false;
}

static int dec_message(struct dec *d, json_t *m, size_t i, struct job_message *out)
{
	json_t *role, *content, *calls;
	const char *r;

	if (!json_is_object(m)) {
		fail(d->err, d->err_size, "messages[%zu]: must be an object {role, content}", i);
		return -1;
	}
	role = json_object_get(m, "role");
	content = json_object_get(m, "content");
	calls = json_object_get(m, "tool_calls");
	r = json_is_string(role) ? json_string_value(role) : "";
	if (strcmp(r, "system") == 0) {
		out->role = ROLE_SYSTEM;
	} else if (strcmp(r, "user") == 0) {
		out->role = ROLE_USER;
	} else if (strcmp(r, "assistant") == 0) {
		out->role = ROLE_ASSISTANT;
	} else if (strcmp(r, "tool") == 0) {
		out->role = ROLE_TOOL;
	} else {
		fail(d->err, d->err_size,
		     "messages[%zu].role: must be \"system\", \"user\", \"assistant\" or \"tool\"",
		     i);
		return -1;
	}
	if (calls && out->role != ROLE_ASSISTANT) {
		fail(d->err, d->err_size,
		     "messages[%zu].tool_calls: only assistant messages make "
		     "tool calls",
		     i);
		return -1;
	}
	if (calls) {
		if (dec_tool_calls(d, calls, i) != 0)
			return -1;
		out->tool_calls = calls;
	}
	if (out->role == ROLE_TOOL) {
		json_t *id = json_object_get(m, "tool_call_id");
		if (!json_is_string(id) || !tool_call_known(d->job, i, json_string_value(id))) {
			fail(d->err, d->err_size,
			     "messages[%zu].tool_call_id: must be the id of a tool call of an "
			     "earlier "
			     "assistant message",
			     i);
			return -1;
		}
		out->tool_call_id = json_string_value(id);
		d->job->caps |= CAP_TOOLS;
	}
	if (calls && (!content || json_is_null(content))) {
		out->content = "";
		return 0;
	}
	if (json_is_array(content))
		return dec_parts(d, content, i, out);
	if (!json_is_string(content)) {
		fail(d->err, d->err_size,
		     "messages[%zu].content: must be a string or an array of content parts", i);
		return -1;
	}
	out->content = json_string_value(content);
	out->content_len = json_string_length(content);
	return 0;
}

/* prompt and messages together: exactly one of them. An empty content string
 * is accepted (the SPEC says "string"); a provider may still refuse it. */
static int dec_content(struct dec *d)
{
	struct job *job = d->job;
	json_t *prompt = json_object_get(d->root, "prompt");
	json_t *msgs = json_object_get(d->root, "messages");

	if ((prompt == NULL) == (msgs == NULL)) {
		fail(d->err, d->err_size, "prompt: exactly one of prompt and messages is required");
		return -1;
	}
	if (prompt) {
		if (!json_is_string(prompt)) {
			fail(d->err, d->err_size, "prompt: must be a string");
			return -1;
		}
		job->messages = xcalloc(1, sizeof *job->messages);
		job->n_messages = 1;
		job->messages[0].role = ROLE_USER;
		job->messages[0].content = json_string_value(prompt);
		job->messages[0].content_len = json_string_length(prompt);
		job->content_bytes = job->messages[0].content_len;
		return 0;
	}
	if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
		fail(d->err, d->err_size,
		     "messages: must be a non-empty array of {role, content} objects");
		return -1;
	}
	job->messages = xcalloc(json_array_size(msgs), sizeof *job->messages);
	size_t n_parts = 0;
	for (size_t i = 0; i < json_array_size(msgs); i++)
		n_parts += json_array_size(json_object_get(json_array_get(msgs, i), "content"));
	if (n_parts)
		job->parts = xcalloc(n_parts, sizeof *job->parts);
	for (size_t i = 0; i < json_array_size(msgs); i++) {
		if (dec_message(d, json_array_get(msgs, i), i, &job->messages[i]) != 0)
			return -1;
		job->n_messages++;
		job->content_bytes += job->messages[i].content_len;
	}
	return 0;
}

static int dec_model(struct dec *d)
{
	json_t *v = json_object_get(d->root, "model");
	char q[QUOTE_MAX + 4];

	if (!v)
		return 0;
	if (!json_is_string(v)) {
		fail(d->err, d->err_size, "model: must be a string naming a catalog model");
		return -1;
	}
	d->job->model = config_model_index(d->cfg, json_string_value(v));
	if (d->job->model < 0) {
		fail(d->err, d->err_size, "model: unknown model \"%s\"",
		     quote_cut(json_string_value(v), q));
		return -1;
	}
	return 0;
}

/* A name given twice is kept once: `models` is a set to route within. */
static int dec_models(struct dec *d)
{
	struct job *job = d->job;
	json_t *v = json_object_get(d->root, "models");
	char q[QUOTE_MAX + 4];

	if (!v)
		return 0;
	if (!json_is_array(v) || json_array_size(v) == 0) {
		fail(d->err, d->err_size,
		     "models: must be a non-empty array of catalog model names");
		return -1;
	}
	job->models = xcalloc(json_array_size(v), sizeof *job->models);
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);
		int idx;
		size_t k;

		if (!json_is_string(e)) {
			fail(d->err, d->err_size, "models[%zu]: must be a string", i);
			return -1;
		}
		idx = config_model_index(d->cfg, json_string_value(e));
		if (idx < 0) {
			fail(d->err, d->err_size, "models[%zu]: unknown model \"%s\"", i,
			     quote_cut(json_string_value(e), q));
			return -1;
		}
		for (k = 0; k < job->n_models && job->models[k] != idx; k++)
			;
		if (k == job->n_models)
			job->models[job->n_models++] = idx;
	}
	return 0;
}

/* Runs after dec_model: the default depends on whether a model is pinned. */
static int dec_allow_fallbacks(struct dec *d)
{
	json_t *v = json_object_get(d->root, "allow_fallbacks");

	if (!v) {
		d->job->allow_fallbacks = d->job->model < 0;
		return 0;
	}
	if (!json_is_boolean(v)) {
		fail(d->err, d->err_size, "allow_fallbacks: must be true or false");
		return -1;
	}
	d->job->allow_fallbacks = json_is_true(v);
	return 0;
}

static int dec_strategy(struct dec *d)
{
	json_t *v = json_object_get(d->root, "strategy");
	char q[QUOTE_MAX + 4];

	if (!v) {
		d->job->strategy = d->cfg->worker.default_strategy;
		return 0;
	}
	if (!json_is_string(v)) {
		fail(d->err, d->err_size,
		     "strategy: must be \"cheapest\", \"balanced\", \"fastest\", \"reliable\" or "
		     "\"auto\"");
		return -1;
	}
	if (strategy_parse(json_string_value(v), &d->job->strategy) != 0) {
		fail(d->err, d->err_size,
		     "strategy: unknown strategy \"%s\"; must be \"cheapest\", \"balanced\", "
		     "\"fastest\", \"reliable\" or \"auto\"",
		     quote_cut(json_string_value(v), q));
		return -1;
	}
	d->job->strategy_set = true;
	return 0;
}

/* A cap is rounded down to whole nano-USD, the safe direction: the worker then
 * never spends more than the job allowed. money_usd_to_nusd() rounds to the
 * nearest, which is right for the decimal a user wrote with up to nine places
 * (0.3 is 299999999.99999994 nano-USD as a double and must stay 300000000);
 * only when the nearest lies above usd x 1e9 by more than the double's own
 * error (the cap had finer digits, e.g. 0.0000000015) is it taken one lower.
 * A positive cap below one nano-USD would round to 0, which means "no cap":
 * it is refused instead. */
static int dec_max_cost(struct dec *d)
{
	json_t *v = json_object_get(d->root, "max_cost_usd");
	double usd, exact;
	int64_t nusd;

	if (!v)
		return 0;
	if (!json_is_number(v) || !(json_number_value(v) > 0)) {
		fail(d->err, d->err_size, "max_cost_usd: must be a number greater than 0");
		return -1;
	}
	usd = json_number_value(v);
	nusd = money_usd_to_nusd(usd);
	if (nusd < 0) {
		fail(d->err, d->err_size, "max_cost_usd: must be at most 9000000000");
		return -1;
	}
	exact = usd * 1e9;
	if ((double)nusd - exact > 4 * DBL_EPSILON * exact)
		nusd--;
	if (nusd == 0) {
		fail(d->err, d->err_size,
		     "max_cost_usd: must be at least 0.000000001 (one nano-USD)");
		return -1;
	}
	d->job->max_cost_nusd = nusd;
	return 0;
}

static job_budget_known_fn *budget_known;
static void *budget_known_opaque;

void job_set_budget_lookup(job_budget_known_fn *fn, void *opaque)
{
	budget_known = fn;
	budget_known_opaque = opaque;
}

static int dec_budget(struct dec *d)
{
	json_t *v = json_object_get(d->root, "budget");
	const char *name = d->cfg->worker.default_budget;
	char q[QUOTE_MAX + 4];

	if (v) {
		if (!json_is_string(v)) {
			fail(d->err, d->err_size,
			     "budget: must be a string naming a configured budget");
			return -1;
		}
		name = json_string_value(v);
	}
	/* The default is checked too: config_load() guarantees it exists, and a
	 * hand-made config that breaks that must not index budgets with -1. */
	d->job->budget = name ? config_budget_index(d->cfg, name) : -1;
	d->job->budget_name = name;
	if (d->job->budget < 0 && name && budget_known && budget_known(budget_known_opaque, name))
		return 0; /* a budget of Redis alone */
	if (d->job->budget < 0) {
		fail(d->err, d->err_size, "budget: unknown budget \"%s\"",
		     name ? quote_cut(name, q) : "(none configured)");
		return -1;
	}
	return 0;
}

/* A real such as 5.0 is refused: the SPEC says integer, and JSON's own types
 * are the only ones a producer can check against the schema. */
static int dec_max_tokens(struct dec *d)
{
	json_t *v = json_object_get(d->root, "max_tokens");

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > JOB_MAX_TOKENS_MAX) {
		fail(d->err, d->err_size, "max_tokens: must be an integer from 1 to %d",
		     JOB_MAX_TOKENS_MAX);
		return -1;
	}
	d->job->max_tokens = json_integer_value(v);
	return 0;
}

/* temperature in [0, JOB_TEMPERATURE_MAX], top_p in [0, 1]: see job.h. */
static int dec_sampling(struct dec *d)
{
	json_t *t = json_object_get(d->root, "temperature");
	json_t *p = json_object_get(d->root, "top_p");

	if (t) {
		if (!json_is_number(t) || !(json_number_value(t) >= 0) ||
		    !(json_number_value(t) <= JOB_TEMPERATURE_MAX)) {
			fail(d->err, d->err_size, "temperature: must be a number from 0 to %d",
			     JOB_TEMPERATURE_MAX);
			return -1;
		}
		d->job->has_temperature = true;
		d->job->temperature = json_number_value(t);
	}
	if (p) {
		if (!json_is_number(p) || !(json_number_value(p) >= 0) ||
		    !(json_number_value(p) <= 1)) {
			fail(d->err, d->err_size, "top_p: must be a number from 0 to 1");
			return -1;
		}
		d->job->has_top_p = true;
		d->job->top_p = json_number_value(p);
	}
	return 0;
}

/* The number of stop sequences is not limited here (OpenAI takes 4, others
 * more); the provider judges. Each one must be a string. */
static int dec_stop(struct dec *d)
{
	json_t *v = json_object_get(d->root, "stop");

	if (!v)
		return 0;
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (!json_is_string(json_array_get(v, i))) {
				fail(d->err, d->err_size, "stop[%zu]: must be a string", i);
				return -1;
			}
		}
	} else if (!json_is_string(v)) {
		fail(d->err, d->err_size, "stop: must be a string or an array of strings");
		return -1;
	}
	d->job->stop = v;
	return 0;
}

/* Other keys inside response_format are ignored, like unknown fields.
 * json_schema takes OpenAI's shape (SPEC §13); its schema is checked for
 * the keywords the worker can validate (jsonschema_check). */
static int dec_response_format(struct dec *d)
{
	json_t *v = json_object_get(d->root, "response_format");
	const char *type;

	if (!v)
		return 0;
	if (!json_is_object(v)) {
		fail(d->err, d->err_size,
		     "response_format: must be an object {\"type\": \"text\"}, {\"type\": "
		     "\"json_object\"} or {\"type\": \"json_schema\", \"json_schema\": {...}}");
		return -1;
	}
	type = json_string_value(json_object_get(v, "type")); /* NULL if not a string */
	if (type && strcmp(type, "json_object") == 0) {
		d->job->format = FORMAT_JSON_OBJECT;
		d->job->json_response = true;
		d->job->caps |= CAP_JSON;
		return 0;
	}
	if (!type || (strcmp(type, "text") != 0 && strcmp(type, "json_schema") != 0)) {
		fail(d->err, d->err_size,
		     "response_format.type: must be \"text\", \"json_object\" or \"json_schema\"");
		return -1;
	}
	if (strcmp(type, "text") == 0)
		return 0;
	json_t *js = json_object_get(v, "json_schema");
	json_t *name = json_object_get(js, "name");
	json_t *schema = json_object_get(js, "schema");
	json_t *strict = json_object_get(js, "strict");
	if (!json_is_object(js)) {
		fail(d->err, d->err_size,
		     "response_format.json_schema: must be an object {\"name\", \"schema\", "
		     "\"strict\"}");
		return -1;
	}
	if (name && (!json_is_string(name) || !tool_name_ok(json_string_value(name)))) {
		fail(d->err, d->err_size,
		     "response_format.json_schema.name: must be 1 to 64 letters, digits, _ or -");
		return -1;
	}
	if (strict && !json_is_boolean(strict)) {
		fail(d->err, d->err_size,
		     "response_format.json_schema.strict: must be true or false");
		return -1;
	}
	if (!json_is_object(schema)) {
		fail(d->err, d->err_size, "response_format.json_schema.schema: must be an object");
		return -1;
	}
	char why[256];
	d->job->validator = jsonschema_compile(schema, why, sizeof why);
	if (!d->job->validator) {
		fail(d->err, d->err_size, "response_format.json_schema.schema: %s", why);
		return -1;
	}
	d->job->format = FORMAT_JSON_SCHEMA;
	d->job->json_response = true;
	d->job->schema = schema;
	d->job->schema_name = name ? json_string_value(name) : "response";
	d->job->schema_strict = json_is_true(strict);
	d->job->extra_bytes += json_bytes(schema);
	d->job->caps |= CAP_JSON_SCHEMA;
	return 0;
}

static int dec_capabilities(struct dec *d)
{
	json_t *v = json_object_get(d->root, "capabilities");
	char q[QUOTE_MAX + 4];

	if (!v)
		return 0;
	if (!json_is_array(v)) {
		fail(d->err, d->err_size,
		     "capabilities: must be an array of \"json\", \"json_schema\", \"tools\", "
		     "\"vision\", \"pdf\", \"reasoning\" or \"long_context\"");
		return -1;
	}
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);
		unsigned bit;

		if (!json_is_string(e)) {
			fail(d->err, d->err_size, "capabilities[%zu]: must be a string", i);
			return -1;
		}
		if (capability_parse(json_string_value(e), &bit) != 0) {
			fail(d->err, d->err_size,
			     "capabilities[%zu]: unknown capability \"%s\"; must be \"json\", "
			     "\"json_schema\", \"tools\", \"vision\", \"pdf\", \"reasoning\" or "
			     "\"long_context\"",
			     i, quote_cut(json_string_value(e), q));
			return -1;
		}
		d->job->caps |= bit;
	}
	return 0;
}

/* 0 means "no deadline" in struct job, so a deadline at or before the epoch
 * (long past, which is all that matters) is stored as 1. */
static int dec_deadline(struct dec *d)
{
	json_t *v = json_object_get(d->root, "deadline");
	int64_t ms;

	if (!v)
		return 0;
	if (!json_is_string(v) || time_parse_rfc3339(json_string_value(v), &ms) != 0) {
		fail(d->err, d->err_size,
		     "deadline: must be an RFC 3339 date-time such as \"2026-11-22T03:00:00Z\"");
		return -1;
	}
	d->job->deadline_ms = ms > 0 ? ms : 1;
	return 0;
}

/* The size is that of json_dumps(metadata, JSON_COMPACT): what the result
 * will carry, kept as metadata_json. */
static int dec_metadata(struct dec *d)
{
	json_t *v = json_object_get(d->root, "metadata");

	if (!v)
		return 0;
	if (!json_is_object(v)) {
		fail(d->err, d->err_size, "metadata: must be an object");
		return -1;
	}
	/* Serialized once: the result carries this text. */
	char *text = json_dumps(v, JSON_COMPACT);
	if (!text || strlen(text) > JOB_METADATA_MAX) {
		free(text);
		fail(d->err, d->err_size, "metadata: larger than %d bytes serialized",
		     JOB_METADATA_MAX);
		return -1;
	}
	d->job->metadata = v;
	d->job->metadata_json = text;
	return 0;
}

/* tools: OpenAI's shape, [{"type":"function","function":{"name","description","parameters"}}]. */
static int dec_tools(struct dec *d)
{
	json_t *v = json_object_get(d->root, "tools");

	if (!v)
		return 0;
	if (!json_is_array(v) || json_array_size(v) == 0) {
		fail(d->err, d->err_size,
		     "tools: must be a non-empty array of {\"type\": \"function\", \"function\": "
		     "{...}}");
		return -1;
	}
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *t = json_array_get(v, i);
		json_t *f = json_object_get(t, "function");
		const char *type = json_string_value(json_object_get(t, "type"));
		json_t *name = json_object_get(f, "name");
		json_t *desc = json_object_get(f, "description");
		json_t *params = json_object_get(f, "parameters");
		if (!json_is_object(t) || !type || strcmp(type, "function") != 0 ||
		    !json_is_object(f)) {
			fail(d->err, d->err_size,
			     "tools[%zu]: must be {\"type\": \"function\", \"function\": "
			     "{\"name\", "
			     "\"description\", \"parameters\"}}",
			     i);
			return -1;
		}
		if (!json_is_string(name) || !tool_name_ok(json_string_value(name))) {
			fail(d->err, d->err_size,
			     "tools[%zu].function.name: must be 1 to 64 letters, digits, _ or -",
			     i);
			return -1;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(json_string_value(json_object_get(
			                   json_object_get(json_array_get(v, k), "function"),
			                   "name")),
			           json_string_value(name)) == 0) {
				fail(d->err, d->err_size,
				     "tools[%zu].function.name: \"%s\" is already tools[%zu]'s", i,
				     json_string_value(name), k);
				return -1;
			}
		if (desc && !json_is_string(desc)) {
			fail(d->err, d->err_size,
			     "tools[%zu].function.description: must be a string", i);
			return -1;
		}
		if (params && !json_is_object(params)) {
			fail(d->err, d->err_size,
			     "tools[%zu].function.parameters: must be an object (a JSON Schema)",
			     i);
			return -1;
		}
	}
	d->job->tools = v;
	d->job->extra_bytes += json_bytes(v);
	d->job->caps |= CAP_TOOLS;
	return 0;
}

/* tool_choice: "auto", "none", "required" or {"type":"function","function":{"name":N}}. */
static int dec_tool_choice(struct dec *d)
{
	json_t *v = json_object_get(d->root, "tool_choice");
	static const char *const names[] = {"auto", "none", "required"};

	if (!v)
		return 0;
	if (!d->job->tools) {
		fail(d->err, d->err_size, "tool_choice: needs tools");
		return -1;
	}
	if (json_is_string(v)) {
		for (int i = 0; i < 3; i++) {
			if (strcmp(json_string_value(v), names[i]) == 0) {
				d->job->tool_choice = (enum tool_choice)(TOOL_CHOICE_AUTO + i);
				return 0;
			}
		}
	} else if (json_is_object(v)) {
		const char *type = json_string_value(json_object_get(v, "type"));
		const char *name =
		        json_string_value(json_object_get(json_object_get(v, "function"), "name"));
		for (size_t i = 0; type && name && strcmp(type, "function") == 0 &&
		                   i < json_array_size(d->job->tools);
		     i++) {
			json_t *f = json_object_get(json_array_get(d->job->tools, i), "function");
			if (strcmp(json_string_value(json_object_get(f, "name")), name) == 0) {
				d->job->tool_choice = TOOL_CHOICE_FUNCTION;
				d->job->tool_choice_name = name;
				return 0;
			}
		}
		fail(d->err, d->err_size,
		     "tool_choice.function.name: must name one of the job's tools");
		return -1;
	}
	fail(d->err, d->err_size,
	     "tool_choice: must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", "
	     "\"function\": {\"name\": ...}}");
	return -1;
}

static int dec_reasoning(struct dec *d)
{
	json_t *v = json_object_get(d->root, "reasoning_effort");

	d->job->effort = EFFORT_NONE;
	if (!v)
		return 0;
	if (!json_is_string(v) || reasoning_effort_parse(json_string_value(v), &d->job->effort)) {
		fail(d->err, d->err_size,
		     "reasoning_effort: must be \"low\", \"medium\" or \"high\"");
		return -1;
	}
	d->job->caps |= CAP_REASONING;
	return 0;
}

/* mode and complete_by (SPEC §14). complete_by's default is counted from
 * the decode, which is when the worker took the job. */
static int dec_mode(struct dec *d)
{
	json_t *v = json_object_get(d->root, "mode");
	json_t *by = json_object_get(d->root, "complete_by");
	int64_t ms;

	d->job->mode = d->cfg->worker.default_mode;
	if (v) {
		if (!json_is_string(v) || mode_parse(json_string_value(v), &d->job->mode) != 0) {
			fail(d->err, d->err_size, "mode: must be \"sync\", \"batch\" or \"auto\"");
			return -1;
		}
		d->job->mode_set = true;
	}
	if (!by) {
		d->job->complete_by_ms = time_now_ms() + d->cfg->batch.default_window_s * 1000;
		return 0;
	}
	if (!json_is_string(by) || time_parse_rfc3339(json_string_value(by), &ms) != 0) {
		fail(d->err, d->err_size,
		     "complete_by: must be an RFC 3339 date-time such as \"2026-11-22T07:00:00Z\"");
		return -1;
	}
	d->job->complete_by_ms = ms > 0 ? ms : 1;
	return 0;
}

int job_part_set_fetched(struct job *job, struct job_part *part, const unsigned char *bytes,
                         size_t len, const char *content_type, char *errstr, size_t errstr_size)
{
	const struct media *m = media_sniffed(bytes, len);
	const struct media *said =
	        content_type ? media_named(content_type, strlen(content_type)) : NULL;
	if (!m)
		m = said; /* the bytes say nothing: trust the server */
	/* An empty body is refused whatever the server calls it: no provider
	 * takes empty data (found by tests/fuzz/fuzz_fetched). */
	if (len == 0 || !m || m->part != part->type) {
		fail(errstr, errstr_size,
		     "messages[%zu].content[%zu].url: the document fetched is %s", part->msg,
		     part->index,
		     len == 0                   ? "empty"
		     : part->type == PART_IMAGE ? "no PNG, JPEG, GIF or WebP image"
		                                : "no PDF");
		return -1;
	}
	part->media_type = m->type;
	part->decoded_len = len;
	struct buf b64 = {0};
	buf_base64(&b64, bytes, len);
	free(part->fetched);
	part->fetched_len = b64.len;
	part->fetched = b64.data ? buf_take(&b64) : xstrdup("");
	if (part->type == PART_DOCUMENT && part->pdf_pages == 0)
		count_document(job, part, bytes, len);
	return 0;
}

/* ---------------------------------------------------------------- decode */

/* Parse flags, chosen once:
 * - JSON_DECODE_ANY so that "42" or "\"x\"" parse and get the precise
 *   "value: must be a JSON object" rather than a parser's complaint;
 * - JSON_REJECT_DUPLICATES because an object with a key twice is ambiguous
 *   (which "id", which "max_cost_usd"?) and parsers disagree on the answer;
 *   for an idempotency key and a cost cap a loud invalid_job is better;
 * - no JSON_ALLOW_NUL: "\u0000" in any string is refused, so every string the
 *   job hands on is a proper C string.
 * Every byte's UTF-8 is checked. jload reads the text as json_loadb does, in
 * a fraction of its instructions (jload.h). */
#define JOB_PARSE_FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES)

int job_decode(const struct config *cfg, const void *value, size_t len, struct job *job,
               char *errstr, size_t errstr_size)
{
	struct dec d = {cfg, NULL, job, errstr, errstr_size};
	int64_t max_bytes =
	        cfg->worker.max_job_bytes > 0 ? cfg->worker.max_job_bytes : JOB_MAX_BYTES_DEFAULT;
	json_error_t jerr;
	int rc = -1;

	memset(job, 0, sizeof *job);
	job->model = -1;
	job->budget = -1;
	if (errstr && errstr_size > 0)
		errstr[0] = '\0';

	if ((uint64_t)len > (uint64_t)max_bytes) {
		fail(errstr, errstr_size,
		     "value: %zu bytes is more than worker.max_job_bytes (%lld)", len,
		     (long long)max_bytes);
		goto out;
	}
	job->root = jload(value ? value : "", len, JOB_PARSE_FLAGS, &jerr);
	if (!job->root) {
		switch (json_error_code(&jerr)) {
		case json_error_invalid_utf8:
			fail(errstr, errstr_size, "value: invalid UTF-8: %s at line %d column %d",
			     jerr.text, jerr.line, jerr.column);
			break;
		case json_error_null_character:
			fail(errstr, errstr_size,
			     "value: invalid JSON: \\u0000 is not allowed in a string at line %d "
			     "column %d",
			     jerr.line, jerr.column);
			break;
		default:
			fail(errstr, errstr_size, "value: invalid JSON: %s at line %d column %d",
			     jerr.text, jerr.line, jerr.column);
			break;
		}
		goto out;
	}
	if (!json_is_object(job->root)) {
		/* Dropped, so that the DLQ record keeps the value as the string it was
		 * (SPEC §5: an object or a string) and a replay sends the same bytes. */
		json_decref(job->root);
		job->root = NULL;
		fail(errstr, errstr_size, "value: must be a JSON object");
		goto out;
	}
	d.root = job->root;

	if (dec_id(&d) != 0 || dec_content(&d) != 0 || dec_model(&d) != 0 || dec_models(&d) != 0 ||
	    dec_allow_fallbacks(&d) != 0 || dec_strategy(&d) != 0 || dec_max_cost(&d) != 0 ||
	    dec_budget(&d) != 0 || dec_max_tokens(&d) != 0 || dec_sampling(&d) != 0 ||
	    dec_stop(&d) != 0 || dec_response_format(&d) != 0 || dec_capabilities(&d) != 0 ||
	    dec_deadline(&d) != 0 || dec_metadata(&d) != 0 || dec_tools(&d) != 0 ||
	    dec_tool_choice(&d) != 0 || dec_reasoning(&d) != 0 || dec_mode(&d) != 0)
		goto out;
	rc = 0;

out:
	if (rc != 0) {
		/* A failed job keeps only what the error result and DLQ record need. */
		json_t *root = job->root;
		const char *id = job->id;

		job->root = NULL;
		job_clear(job);
		job->root = root;
		job->id = id;
		job->model = -1;
		job->budget = -1;
	}
	return rc;
}

void job_clear(struct job *job)
{
	if (!job)
		return;
	for (size_t i = 0; i < job->n_parts; i++)
		free(job->parts[i].fetched);
	free(job->parts);
	for (size_t i = 0; i < job->n_texts; i++)
		free(job->texts[i]);
	free(job->texts);
	jsonschema_free(job->validator);
	free(job->messages);
	free(job->models);
	free(job->metadata_json);
	json_decref(job->root);
	memset(job, 0, sizeof *job);
	job->model = -1;
	job->budget = -1;
}
