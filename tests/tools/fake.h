/* fake.h: what the files of bin/fake_provider share, and nothing else
 * includes. fake_provider.c is the server (HTTP, rules, control API, the
 * decision of each call); fake_formats.c routes a path to its format and
 * holds what the formats share; fake_openai.c, fake_anthropic.c and
 * fake_gemini.c read, check and answer one format each; fake_schema.c
 * makes answers from JSON Schemas and checks the schemas the providers
 * would refuse; fake_media.c decodes base64, knows images and PDFs, and
 * makes the files of GET /_files/; fake_batch.c plays the three batch APIs
 * (their state, their clock, their files), answering each request of a
 * batch through the server as its sync endpoint would. */
#ifndef FAKE_H
#define FAKE_H

#include <jansson.h>
#include <uv.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum format { FMT_NONE, FMT_OPENAI, FMT_ANTHROPIC, FMT_GEMINI };

/* "none", "openai", "anthropic", "gemini", by enum format. */
extern const char *const fake_format_names[];

/* What one API request asked, read from its body whatever its format. */
struct call {
	enum format fmt;
	char prefix[512];
	char model[256];
	const char *anthropic_version; /* borrowed headers, NULL when absent */
	const char *anthropic_beta;
	json_t *body; /* new reference, the caller's to free */

	/* The first problem a real API would refuse the request for, NULL when
	 * none; with OpenAI's error.param and error.code (NULL: null). */
	const char *invalid;
	const char *invalid_param;
	const char *invalid_code;
	int invalid_status; /* 0: 400 */
	char invalid_buf[768], param_buf[256];

	/* For the usage. */
	int64_t text_bytes; /* UTF-8 bytes of the text the request carries */
	int64_t messages;   /* a system prompt counts as one */
	int64_t images;     /* image parts, inline or by URL */
	int64_t pdf_pages;  /* pages of the inline PDFs (a PDF by URL counts none) */
	int64_t max_tokens; /* the output limit asked, -1 = none */
	uint32_t hash;      /* of all text, for an answer that differs by prompt */
	bool refuse_word;   /* the text holds FAKE_REFUSE_WORD */
	bool mentions_json; /* the text holds "json", in any case */

	/* For the answer. */
	bool json_mode;         /* JSON without a schema */
	json_t *schema;         /* borrowed: the native structured output's schema, or NULL */
	const char *tool;       /* borrowed: the tool to call, NULL = answer in text */
	json_t *tool_params;    /* borrowed: its parameters' schema, may be NULL */
	bool thinking;          /* reasoning or thinking asked */
	int64_t thinking_cap;   /* the thinking budget asked, -1 = none given */
	bool after_tool_result; /* the last message is a tool result */
};

/* What a call that succeeds answers, decided by the server. */
enum answer_kind {
	ANSWER_TEXT,      /* "fake answer N from MODEL" */
	ANSWER_JSON,      /* a JSON object (JSON mode) */
	ANSWER_SCHEMA,    /* an instance of call.schema */
	ANSWER_BROKEN,    /* content that breaks call.schema */
	ANSWER_TOOL_CALL, /* a call of call.tool (args may be broken: see broken) */
	ANSWER_REFUSAL,
};

struct answer {
	enum answer_kind kind;
	char *text;   /* new: the content (not for ANSWER_TOOL_CALL) */
	json_t *args; /* new: the tool call's arguments (ANSWER_TOOL_CALL) */
	bool broken;  /* the content or the arguments break their schema */
	uint64_t seq;
	int64_t in;          /* input tokens, cached and cache writes included */
	int64_t cached;      /* of in: read from the cache */
	int64_t cache_write; /* of in: written to the cache (Anthropic) */
	int64_t out;         /* output tokens, reasoning included */
	int64_t reasoning;   /* of out: thinking */
	bool truncated;      /* the output limit cut the answer */
};

/* The rules a provider checks a schema against. */
enum schema_rules {
	RULES_OPENAI_STRICT, /* OpenAI strict mode: objects closed, every property required */
	RULES_ANTHROPIC,     /* Anthropic structured outputs and strict tools */
	RULES_OPENAPI,       /* Gemini's responseSchema and parameters: the OpenAPI subset */
};

/* The word that makes the fake refuse, in any text of a request; the
 * refusal; the thinking shown when there is some. */
#define FAKE_REFUSE_WORD   "PLEASE_REFUSE"
#define FAKE_REFUSAL_TEXT  "I'm sorry, but I can't help with that request."
#define FAKE_THINKING_TEXT "The fake provider thought about it, briefly."

/* ------------------------------------------------------ fake_provider.c */

/* One HTTP request as the server read it: the strings point into the
 * connection's copy of the head, the body into its input buffer, all
 * valid until the request is answered or deferred. */
#define FAKE_MAX_HEADERS 64
#define FAKE_MAX_ARGS    16
struct field {
	const char *name, *value;
};
struct req {
	const char *method;
	const char *path; /* percent-decoded, without the query */
	struct field headers[FAKE_MAX_HEADERS];
	size_t n_headers;
	struct field args[FAKE_MAX_ARGS]; /* the query, decoded */
	size_t n_args;
	const char *body;
	size_t len;
	bool too_large;
};

/* A client connection (the server's). */
struct conn;

/* The header or query argument called name, NULL when absent. Borrowed. */
const char *fake_req_header(const struct req *r, const char *name);
const char *fake_req_arg(const struct req *r, const char *name);

/* The wall clock, in unix seconds. */
double fake_now_unix(void);

/* Answers with doc (stolen; NULL, out of memory, drops the connection)
 * as JSON, after delay_ms. */
void fake_send_json(struct conn *c, unsigned status, json_t *doc, int64_t delay_ms);

/* A part of an answer's body: borrowed (it must live until the write is
 * done: the batches' files and outputs live until the server exits) or
 * owned (malloc'd, freed once written). */
struct fake_piece {
	const char *data;
	size_t len;
	bool owned;
};
#define FAKE_MAX_PIECES 8

/* Answers now with the n pieces (n <= FAKE_MAX_PIECES) one after the
 * other as the body: nothing is copied, however large. */
void fake_send_pieces(struct conn *c, unsigned status, const char *content_type,
                      struct fake_piece *p, size_t n);

/* Closes the connection without an answer. */
void fake_drop(struct conn *c);

/* What the rules say of a batch: the first rule without "endpoint" whose
 * prefix and model patterns match (see the top of fake_provider.c). */
struct fake_batch_rules {
	int64_t validating_ms, finish_ms, finalizing_ms, cancel_ms;
	double error_share, expire_share, stall_share;
	bool never_ends, expire, fail;
	bool drop_metadata; /* Gemini: inline answers without their request's metadata */
};
void fake_batch_rules(const char *prefix, const char *model, struct fake_batch_rules *out);

/* The key check of a batch call: as a sync call of the same prefix and
 * model is checked. Answers 401 itself and returns false when it fails. */
bool fake_batch_auth(struct conn *conn, const struct req *r, enum format fmt, const char *prefix,
                     const char *model);

/* What a batch call (endpoint: "files", "create", "get", "cancel",
 * "list", "results") is to do by the fault rules of its endpoint. */
enum fake_gate {
	GATE_GO,   /* go on; answer after *delay_ms */
	GATE_DONE, /* the server answered (an error, a body, a hang): stop */
	GATE_DROP, /* take effect, then fake_drop instead of answering */
};
enum fake_gate fake_batch_gate(struct conn *conn, enum format fmt, const char *prefix,
                               const char *model, const char *endpoint, int64_t *delay_ms);

/* Runs request c (read by fake_parse) of batch batch_id, created at path,
 * as its sync endpoint would: an invalid request gets its 4xx; fail makes
 * it a 500; else it is answered by the rules of its prefix and model
 * (usage, content, schema breaks, refusals). Logged in the request log
 * with the batch id and custom_id, counted apart from sync calls. Returns
 * the status; with 200, *a holds the answer (a->text and a->args the
 * caller's to free). *seq gets the log's sequence number. */
int fake_batch_run(struct call *c, bool fail, const char *path, const char *batch_id,
                   const char *custom_id, struct answer *a, uint64_t *seq);

/* ------------------------------------------------------------ fake_batch.c */

/* Starts the batches' clock on loop. */
void fake_batch_init(uv_loop_t *loop);
/* Stops the clock (closes its handle) when the server shuts down. */
void fake_batch_close(void);
/* Frees every batch and file, once the loop is over. */
void fake_batch_free(void);
/* The largest request body a batch endpoint takes (an OpenAI upload, an
 * Anthropic batch), or 0 when path is not a batch endpoint's. */
size_t fake_batch_body_limit(const char *path);
/* Answers r when it is a batch endpoint's call; false when it is not. */
bool fake_batch_handle(struct conn *conn, const struct req *r);
/* The "batches" object of /_stats (new reference). */
json_t *fake_batch_stats(void);
/* /_control/reset: the counters of fake_batch_stats, not the batches. */
void fake_batch_stats_reset(void);
/* GET /_control/batches: every batch, oldest first; with requests, each
 * request's custom_id and fate (new reference). */
json_t *fake_batch_list(bool requests);

/* ---------------------------------------------------------- fake_formats.c */

/* Splits an API path into format, prefix and (Gemini) model, filling
 * c->prefix and c->model, and readies *c (zeroed by the caller) for
 * fake_parse. Returns FMT_NONE for any other path. */
enum format fake_route(const char *path, struct call *c);

/* Readies *c (zeroed by the caller) for fake_parse of a body in format fmt
 * sent under prefix (model: Gemini's, from its path; NULL for the others,
 * whose body names it), as fake_route does for a sync call. */
void fake_call_init(struct call *c, enum format fmt, const char *prefix, const char *model);

/* Reads and checks c->body (a JSON object) as c->fmt asks, filling the rest
 * of *c; a request a real API would refuse gets c->invalid. */
void fake_parse(struct call *c);

/* The format's error body; message is the provider's words, never a key.
 * oa_code and oa_param are OpenAI's (NULL: null). New reference. */
json_t *fake_error_body(enum format fmt, int status, const char *message, const char *oa_code,
                        const char *oa_param);

/* What the provider says with status, for the error body. Static. */
const char *fake_status_message(enum format fmt, int status);

/* OpenAI's error.code for status, or NULL. Static. */
const char *fake_openai_code(int status);

/* The format's context overflow error body for a prompt of in tokens and a
 * limit of max (<= 0: the format's usual). New reference. */
json_t *fake_overflow_body(enum format fmt, int64_t in, int64_t max);

/* The success body of call c answered with a. New reference, NULL when out
 * of memory. */
json_t *fake_success_body(const struct call *c, const struct answer *a);

/* What the format files share for reading a request. */

/* Records the request's first problem (param and code: OpenAI's
 * error.param and error.code, NULL for null); later ones are ignored. */
__attribute__((format(printf, 4, 5))) void fake_fail(struct call *c, const char *param,
                                                     const char *code, const char *fmt, ...);
/* Checks schema against rules (fake_schema_check); a breach is recorded
 * with fake_fail(c, param, code, ...). Returns whether there was none. */
bool fake_schema_ok(struct call *c, json_t *schema, enum schema_rules rules, const char *where,
                    const char *param, const char *code);
/* Counts s as text of the request (bytes, hash, the refusal word, "json"). */
void fake_text(struct call *c, const char *s);
/* Whether s is empty or white space only. */
bool fake_blank(const char *s);
/* v's integer, or dflt when v is not one. */
int64_t fake_int_or(json_t *v, int64_t dflt);
/* Whether v is the string s. */
bool fake_is(json_t *v, const char *s);
/* Whether s is 1 to max letters, digits, '_' or '-'. */
bool fake_name_ok(const char *s, size_t max);
/* Counts an image (type "image/...") or a PDF's pages (when b is known). */
void fake_count_media(struct call *c, const char *type, const unsigned char *b, size_t n);
/* Splits "data:TYPE;base64,DATA" (DATA borrowed from url); false when url
 * is not one. */
bool fake_data_url(const char *url, char *type, size_t type_size, const char **data);
/* Whether s is an http:// or https:// URL. */
bool fake_web_url(const char *s);

/* Tool call ids of one turn, borrowed from the request, to pair with the
 * results of the next. */
#define FAKE_MAX_IDS 64
struct fake_ids {
	const char *v[FAKE_MAX_IDS];
	size_t n;
};
void fake_ids_add(struct fake_ids *s, const char *id);
/* Removes id; false when it was not there. */
bool fake_ids_take(struct fake_ids *s, const char *id);
/* The ids joined by ", " into buf, which is returned. */
const char *fake_ids_list(const struct fake_ids *s, char *buf, size_t size);

/* The formats: each reads and checks c->body into *c, and writes an answer
 * (a new reference, NULL when out of memory). */
void fake_openai_parse(struct call *c);
json_t *fake_openai_answer(const struct call *c, const struct answer *a);
void fake_anthropic_parse(struct call *c);
json_t *fake_anthropic_answer(const struct call *c, const struct answer *a);
void fake_gemini_parse(struct call *c);
json_t *fake_gemini_answer(const struct call *c, const struct answer *a);

/* ----------------------------------------------------------- fake_schema.c */

/* A small instance of schema that validates against it (JSON Schema, or
 * Gemini's OpenAPI subset), "$ref" resolved from schema itself as the root.
 * New reference; NULL only when out of memory. */
json_t *fake_schema_instance(json_t *schema);

/* Makes *instance (made by fake_schema_instance(schema)) fail the schema:
 * the first required property dropped when how is even, or given a value
 * of a type the schema does not allow when how is odd, or a wrong type
 * for the whole. Returns false, *instance untouched, when nothing the
 * schema refuses can be made (an empty schema takes anything). */
bool fake_schema_break(json_t **instance, json_t *schema, unsigned how);

/* Checks schema against rules; on the first breach writes the provider's
 * words (prefixed by where, e.g. "response_format") to err and returns -1. */
int fake_schema_check(json_t *schema, enum schema_rules rules, const char *where, char *err,
                      size_t err_size);

/* ------------------------------------------------------------ fake_media.c */

/* Decodes base64: standard alphabet with padding, or with lenient (Google's
 * bytes fields) also the URL-safe one and no padding. Returns new bytes
 * (*out_len of them, NUL-terminated), or NULL if s is not base64 or out of
 * memory. */
unsigned char *fake_base64_decode(const char *s, size_t len, bool lenient, size_t *out_len);

/* The media type the bytes start like ("image/png", "image/jpeg",
 * "image/gif", "image/webp", "application/pdf"), or NULL. Static. */
const char *fake_media_sniff(const unsigned char *b, size_t len);

/* The pages of a PDF: its "/Type /Page" objects. */
int64_t fake_pdf_pages(const unsigned char *pdf, size_t len);

/* The body of GET /_files/NAME (see fake_provider.c's top comment): new
 * bytes, *len of them, and their static content type. NULL when there is
 * no such file or out of memory. */
unsigned char *fake_file(const char *name, size_t *len, const char **content_type);

#endif
