/* job_content: a job's prompt or messages (SPEC §2) with their content
 * parts, images and documents (SPEC §13): inline data checked against its
 * media type, data: and https:// URLs, a document's pages counted, and an
 * assistant's tool calls. Part of the job decoder (job_int.h). */
#include "job.h"

#include "buf.h"
#include "job_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
static int part_inline(struct job_dec *d, struct job_part *part, const char *field)
{
	const struct media *m = media_named(part->media_type, strlen(part->media_type));
	if (!m || m->part != part->type) {
		job_fail(d->err, d->err_size, "%s.media_type: must be %s", field,
		         part->type == PART_IMAGE ? "image/png, image/jpeg, image/gif or image/webp"
		                                  : "application/pdf");
		return -1;
	}
	part->media_type = m->type;
	if (!base64_valid(part->data, part->data_len, &part->decoded_len)) {
		job_fail(d->err, d->err_size,
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
		job_fail(d->err, d->err_size, "%s.data: is not %s%s%s", field, m->type,
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
static int data_url(struct job_dec *d, const char *url, struct job_part *part, const char *field)
{
	const char *comma = strchr(url, ',');
	const char *b64 = comma ? strstr(url, ";base64,") : NULL;
	if (!comma || b64 != comma - 7) {
		job_fail(d->err, d->err_size,
		         "%s: a data: URL must be data:<media type>;base64,<data>", field);
		return -1;
	}
	const struct media *m = media_named(url + 5, (size_t)(b64 - url - 5));
	if (!m) {
		job_fail(d->err, d->err_size, "%s: unknown media type in the data: URL", field);
		return -1;
	}
	part->media_type = m->type;
	part->data = comma + 1;
	part->data_len = strlen(comma + 1);
	return 0;
}

static int part_url(struct job_dec *d, const char *url, struct job_part *part, const char *field)
{
	if (strncmp(url, "data:", 5) == 0)
		return data_url(d, url, part, field);
	if (strncmp(url, "https://", 8) != 0 || !url[8] || strpbrk(url, " \t\r\n")) {
		job_fail(d->err, d->err_size, "%s: must be an https:// URL or a data: URL", field);
		return -1;
	}
	part->url = url;
	d->job->n_url_parts++;
	return 0;
}

/* Decodes one part of messages[mi].content[k] into part. */
static int dec_part(struct job_dec *d, json_t *v, size_t mi, size_t k, enum role role,
                    struct job_part *part)
{
	char field[64];
	snprintf(field, sizeof field, "messages[%zu].content[%zu]", mi, k);
	part->msg = mi;
	part->index = k;
	const char *type = json_is_object(v) ? json_string_value(json_object_get(v, "type")) : NULL;
	if (!type) {
		job_fail(d->err, d->err_size, "%s: must be an object with a string \"type\"",
		         field);
		return -1;
	}
	if (strcmp(type, "text") == 0) {
		json_t *t = json_object_get(v, "text");
		if (!json_is_string(t)) {
			job_fail(d->err, d->err_size, "%s.text: must be a string", field);
			return -1;
		}
		part->type = PART_TEXT;
		part->text = json_string_value(t);
		part->text_len = json_string_length(t);
		return 0;
	}
	if (role != ROLE_USER) {
		job_fail(d->err, d->err_size, "%s: only user messages may hold images or documents",
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
			job_fail(d->err, d->err_size, "%s: exactly one of url and data is required",
			         field);
			return -1;
		}
		if ((url && !json_is_string(url)) || (data && !json_is_string(data)) ||
		    (media && !json_is_string(media))) {
			job_fail(d->err, d->err_size,
			         "%s: url, data and media_type must be strings", field);
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
				job_fail(d->err, d->err_size,
				         "%s.media_type: is required with data", field);
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
			job_fail(d->err, d->err_size, "%s.image_url.url: must be a string", field);
			return -1;
		}
		part->detail = detail ? json_string_value(detail) : NULL;
		char f[80];
		snprintf(f, sizeof f, "%s.image_url.url", field);
		if (part_url(d, json_string_value(u), part, f) != 0)
			return -1;
		if (part->url == NULL && strncmp(part->media_type, "image/", 6) != 0) {
			job_fail(d->err, d->err_size, "%s.image_url.url: is not an image", field);
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
			job_fail(d->err, d->err_size,
			         "%s.file.file_id: is not supported (a file of one provider's "
			         "store); "
			         "send file_data",
			         field);
			return -1;
		}
		if (!json_is_string(fd) || (fn && !json_is_string(fn))) {
			job_fail(d->err, d->err_size, "%s.file.file_data: must be a string", field);
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
		job_fail(d->err, d->err_size,
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
static int dec_parts(struct job_dec *d, json_t *content, size_t i, struct job_message *out)
{
	struct job *job = d->job;
	if (json_array_size(content) == 0) {
		job_fail(d->err, d->err_size, "messages[%zu].content: must not be an empty array",
		         i);
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

/* An assistant's tool_calls: [{"id","type":"function","function":{"name","arguments"}}]. */
static int dec_tool_calls(struct job_dec *d, json_t *calls, size_t i)
{
	if (!json_is_array(calls) || json_array_size(calls) == 0) {
		job_fail(d->err, d->err_size, "messages[%zu].tool_calls: must be a non-empty array",
		         i);
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
			job_fail(d->err, d->err_size,
			         "messages[%zu].tool_calls[%zu]: must be {\"id\", \"type\": "
			         "\"function\", "
			         "\"function\": {\"name\", \"arguments\"}}",
			         i, k);
			return -1;
		}
		if (!name || !job_tool_name_ok(name)) {
			job_fail(d->err, d->err_size,
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
			job_fail(d->err, d->err_size,
			         "messages[%zu].tool_calls[%zu].function.arguments: must be a "
			         "string "
			         "holding a JSON object",
			         i, k);
			return -1;
		}
	}
	d->job->extra_bytes += job_json_bytes(calls);
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

static int dec_message(struct job_dec *d, json_t *m, size_t i, struct job_message *out)
{
	json_t *role, *content, *calls;
	const char *r;

	if (!json_is_object(m)) {
		job_fail(d->err, d->err_size, "messages[%zu]: must be an object {role, content}",
		         i);
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
		job_fail(d->err, d->err_size,
		         "messages[%zu].role: must be \"system\", \"user\", \"assistant\" or "
		         "\"tool\"",
		         i);
		return -1;
	}
	if (calls && out->role != ROLE_ASSISTANT) {
		job_fail(d->err, d->err_size,
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
			job_fail(d->err, d->err_size,
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
		job_fail(d->err, d->err_size,
		         "messages[%zu].content: must be a string or an array of content parts", i);
		return -1;
	}
	out->content = json_string_value(content);
	out->content_len = json_string_length(content);
	return 0;
}

/* prompt and messages together: exactly one of them. An empty content string
 * is accepted (the SPEC says "string"); a provider may still refuse it. */
int job_dec_content(struct job_dec *d)
{
	struct job *job = d->job;
	json_t *prompt = json_object_get(d->root, "prompt");
	json_t *msgs = json_object_get(d->root, "messages");

	if ((prompt == NULL) == (msgs == NULL)) {
		job_fail(d->err, d->err_size,
		         "prompt: exactly one of prompt and messages is required");
		return -1;
	}
	if (prompt) {
		if (!json_is_string(prompt)) {
			job_fail(d->err, d->err_size, "prompt: must be a string");
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
		job_fail(d->err, d->err_size,
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
		job_fail(errstr, errstr_size,
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
