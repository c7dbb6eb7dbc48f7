/* job: decoding and validation of one input message (SPEC §2).
 *
 * job_decode() either fills a struct job whose every field obeys SPEC §2, or
 * fails with a message that names the offending field ("max_tokens: must be an
 * integer from 1 to 1000000"). A failed decode is an invalid_job; it is never
 * retried. */
#ifndef PROMPTYARD_JOB_H
#define PROMPTYARD_JOB_H

#include "config.h"

struct jsonschema; /* jsonschema.h */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOB_ID_MAX         200
#define JOB_METADATA_MAX   16384
#define JOB_MAX_TOKENS_MAX 1000000
/* Used when worker.max_job_bytes is 0 (a config built by hand): SPEC's default. */
#define JOB_MAX_BYTES_DEFAULT 1048576
/* The SPEC only says "number" for temperature and top_p. The bounds taken are
 * the widest any supported provider accepts (OpenAI and Gemini: temperature
 * 0-2; all: top_p 0-1); a provider with a narrower range (Anthropic: 0-1) is
 * its adapter's business. */
#define JOB_TEMPERATURE_MAX 2

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_TOOL };
const char *role_name(enum role r);

/* A content part (SPEC §13). OpenAI's shapes (image_url, file) are decoded
 * into these too. Strings are borrowed from job.root unless said otherwise. */
enum part_type { PART_TEXT, PART_IMAGE, PART_DOCUMENT };

struct job_part {
	enum part_type type;
	const char *text; /* PART_TEXT */
	size_t text_len;
	/* An image or document is a URL (https://...) or inline base64 data. */
	const char *url;  /* NULL when inline */
	const char *data; /* base64, standard alphabet and padding, no blanks;
	                     inside a data: URL when one was given; NULL for a URL */
	size_t data_len;
	const char *media_type; /* "image/png", "image/jpeg", "image/gif", "image/webp",
	                           "application/pdf" (static strings); NULL for a URL
	                           part until fetched */
	size_t decoded_len;     /* bytes the data decodes to */
	int64_t pdf_pages;      /* a PDF's pages, counted from its bytes (job_count_pdf_pages);
	                           0 while unknown (a URL not fetched yet) */
	const char *filename;   /* OpenAI file part's filename, or NULL */
	const char *detail;     /* OpenAI image_url detail ("low", "high", "auto"), or NULL */
	/* The bytes of a URL part, fetched by the worker for a provider that
	 * cannot take URLs (job_part_set_fetched); new, base64; NULL until then. */
	char *fetched;
	size_t fetched_len;
	size_t msg, index; /* messages[msg].content[index] */
};

struct job_message {
	enum role role;
	/* The message's text: its content string, or the text of its text parts
	 * joined by newlines (then owned by the job); "" when it has none. What
	 * rules, the complexity score and text-only formats read. */
	const char *content;
	size_t content_len; /* bytes of UTF-8 */
	/* Content given as an array of parts: parts[0..n_parts) (into
	 * job.parts); NULL/0 when content was a string. */
	struct job_part *parts;
	size_t n_parts;
	/* assistant: the tool calls it made, borrowed: an array of
	 * {"id","type":"function","function":{"name","arguments"}} whose
	 * arguments strings each hold a JSON object; NULL when none. */
	json_t *tool_calls;
	const char *tool_call_id; /* tool: the call it answers */
};

/* response_format (SPEC §2, §13). */
enum output_format { FORMAT_TEXT, FORMAT_JSON_OBJECT, FORMAT_JSON_SCHEMA };
/* tool_choice (SPEC §13); TOOL_CHOICE_UNSET when the job sets none. */
enum tool_choice {
	TOOL_CHOICE_UNSET,
	TOOL_CHOICE_AUTO,
	TOOL_CHOICE_NONE,
	TOOL_CHOICE_REQUIRED,
	TOOL_CHOICE_FUNCTION
};

struct job {
	json_t *root; /* the parsed message (new reference); NULL if it is not a JSON object */
	/* The id, even for an invalid job when the message had a usable one
	 * (a string of 1-200 bytes); NULL otherwise. Borrowed from root. */
	const char *id;

	struct job_message *messages; /* new array; a `prompt` becomes one user message */
	size_t n_messages;
	size_t content_bytes; /* sum of content_len */

	int model;   /* catalog index when `model` pins one, else -1 */
	int *models; /* new array of catalog indexes from `models`, NULL if absent */
	size_t n_models;
	bool allow_fallbacks;    /* resolved default: false when model is set, else true */
	enum strategy strategy;  /* resolved: the job's, else worker.default_strategy */
	bool strategy_set;       /* the job named a strategy (a rule may then not override it) */
	int64_t max_cost_nusd;   /* 0 = no cap */
	int budget;              /* config.budgets index; -1 for a budget known only in
	                           Redis (job_set_budget_lookup); resolved default */
	const char *budget_name; /* the budget's name (borrowed from root or cfg) */
	int64_t max_tokens;      /* 0 = the model's default_max_tokens */
	bool has_temperature, has_top_p;
	double temperature, top_p;
	json_t *stop;       /* string or array of strings, borrowed from root, or NULL */
	bool json_response; /* response_format json_object or json_schema: the answer is JSON */
	enum output_format format;
	json_t *schema; /* json_schema: the schema (borrowed) */
	/* json_schema: the schema compiled (new), which the answer's parsed
	 * content must satisfy (SPEC §13). */
	struct jsonschema *validator;
	const char *schema_name; /* json_schema.name, "response" when absent */
	bool schema_strict;      /* json_schema.strict */
	json_t *tools; /* array of {"type":"function","function":{...}}, borrowed, or NULL */
	enum tool_choice tool_choice;
	const char *tool_choice_name; /* TOOL_CHOICE_FUNCTION: the function */
	enum reasoning_effort effort; /* EFFORT_NONE unless reasoning_effort is set */
	enum job_mode mode;           /* resolved: the job's, else worker.default_mode */
	bool mode_set;
	int64_t complete_by_ms; /* unix ms: the job's, else decode time + batch.default_window_s */
	unsigned caps;          /* required capabilities (enum capability bits) */
	int64_t deadline_ms;    /* unix ms, 0 = none */
	json_t *metadata;       /* borrowed from root, NULL if absent */
	char *metadata_json;    /* metadata as compact JSON, what results carry (new), or NULL */

	/* Content parts of every message, in order (new array). */
	struct job_part *parts;
	size_t n_parts;
	size_t n_images;              /* image parts */
	size_t n_documents;           /* document parts */
	int64_t pdf_pages;            /* pages of the documents counted so far */
	int64_t pdf_unreadable_bytes; /* decoded bytes of PDFs whose pages could not be
	                                 counted: bytes / 3 tokens each (SPEC §13) */
	size_t n_url_parts;           /* parts given by URL */
	size_t extra_bytes;           /* bytes of tool definitions, tool calls and the schema:
	                            counted with the contents in est_input */
	char **texts;                 /* joined texts of parts messages (owned) */
	size_t n_texts;
};

/* Counts the pages of a PDF: its "/Type /Page" objects (not "/Pages").
 * Returns 0 when none can be found (pages kept in compressed object
 * streams): the estimate then counts the document's bytes / 3 (SPEC §13). */
int64_t job_count_pdf_pages(const unsigned char *pdf, size_t len);

/* Input tokens the job's images and documents add on model m (SPEC §13):
 * image_tokens per image, pdf_page_tokens per counted page, bytes / 3 of
 * an unreadable PDF. */
int64_t job_media_tokens(const struct job *job, const struct model_conf *m);

/* Decodes standard base64 (with padding, no blanks) of len bytes into out
 * (room for len / 4 * 3 bytes; NULL only to check). Returns the decoded
 * length, or -1 when it is not such base64. */
int64_t job_base64_decode(const char *b64, size_t len, unsigned char *out);

/* Gives a URL part the bytes fetched for it (bytes borrowed, encoded here):
 * media_type is from the answer's Content-Type or the bytes themselves; a
 * document's pages are counted and added to job->pdf_pages. Returns 0, or -1
 * with errstr naming the part when the bytes are not of a type the part
 * takes (an image that is no PNG/JPEG/GIF/WebP, a document that is no PDF)
 * or there are none. */
int job_part_set_fetched(struct job *job, struct job_part *part, const unsigned char *bytes,
                         size_t len, const char *content_type, char *errstr, size_t errstr_size);

/* Budgets may live in Redis only (made with `promptyard budget set`). A
 * process that knows them (the worker polls them) sets a lookup, and
 * job_decode then accepts a `budget` it knows; without one, only the config's
 * budgets are accepted. fn(opaque, name) must not block. */
typedef bool job_budget_known_fn(void *opaque, const char *name);
void job_set_budget_lookup(job_budget_known_fn *fn, void *opaque);

/* Decodes len bytes of value (borrowed; nothing points into it afterwards).
 * The job is zeroed first. Returns 0 on success. On failure returns -1,
 * writes the reason to errstr, and still leaves job->root (when the value
 * parsed as a JSON object) and job->id (when usable) set so that the error
 * result and the DLQ record can carry them; every other field is then at its
 * zero value (model and budget -1). Call job_clear() either way. cfg is
 * borrowed and must outlive the job.
 *
 * The reason starts with the field ("max_tokens: ...", "messages[2].role: ...",
 * "value: ..." for the message as a whole), is always valid UTF-8 (it goes
 * into JSON), and quotes at most 64 bytes of a user's value. Fields are
 * checked in the order of the SPEC §2 table, so it names the first bad one.
 *
 * Beyond the SPEC's words, decided here:
 * - the size limit is checked before parsing (root then stays NULL);
 * - an object with a duplicate key is invalid JSON (JSON_REJECT_DUPLICATES):
 *   an ambiguous id or cost cap is refused loudly, not resolved silently;
 * - "\u0000" in any string is refused, so every borrowed string is a C string;
 * - a present field must have its type: null is not taken for "absent";
 * - max_cost_usd is rounded down to whole nano-USD (a cap must never be
 *   exceeded) and must be at least one nano-USD;
 * - `models` keeps each catalog model once, in the order first given;
 * - a deadline at or before the epoch is stored as 1 (0 means none). */
int job_decode(const struct config *cfg, const void *value, size_t len, struct job *job,
               char *errstr, size_t errstr_size);
/* Frees the arrays, drops the reference on root, and zeroes the job (model and
 * budget -1). Safe on a zeroed job, on a cleared one and on NULL. */
void job_clear(struct job *job);

#endif
