/* provider: the table every wire format exports (provider_openai.c, ...).
 *
 * The router and the HTTP loop see only this table. A provider builds the HTTP
 * request for one attempt and turns the HTTP response into a normalized
 * completion or a classified failure. Adding a wire format is adding one file
 * and its line in provider_registry.c/.h (provider_lookup, the tables). */
#ifndef PROMPTYARD_PROVIDER_H
#define PROMPTYARD_PROVIDER_H

#include "buf.h"
#include "config.h"
#include "http.h"
#include "job.h"
#include "jscan.h"
#include "money.h"
#include "provider_registry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The common finish_reason set of results. */
enum finish_reason {
	FINISH_STOP,
	FINISH_LENGTH,
	FINISH_CONTENT_FILTER,
	FINISH_TOOL_CALLS,
	FINISH_OTHER,
	FINISH_REFUSAL, /* the model declined (SPEC §13): the call answered, the result is ok */
};
const char *finish_reason_name(enum finish_reason f);

/* How a response is to be treated by failover (SPEC §6). */
enum response_class {
	RESPONSE_OK,               /* a usable completion */
	RESPONSE_RETRYABLE,        /* 429, 5xx, 529, invalid body...: next model after retry_same */
	RESPONSE_CONTEXT_OVERFLOW, /* prompt too long for the model: move to a larger one */
	RESPONSE_AUTH,             /* 401/403: open the provider's circuit, move on */
	RESPONSE_REJECTED,         /* other 4xx: provider_rejected, the job ends */
	RESPONSE_INVALID,          /* 2xx whose body is unusable: invalid_response, retryable */
};

/* A tool call of an answer, normalised to OpenAI's shape (SPEC §13). */
struct completion_tool_call {
	char *id;        /* new; the provider's, or made up ("call_<n>") when it gives none */
	char *name;      /* new */
	char *arguments; /* new: a JSON object as text */
};

struct completion {
	char *content; /* new, UTF-8; NULL if none */
	enum finish_reason finish_reason;
	struct usage usage;
	bool has_usage;        /* the provider reported usage: the attempt is billed */
	bool usage_impossible; /* it reported usage that cannot be read as counts
	                          (negative, fractional, not numbers, beyond
	                          10^15, parts above their whole): has_usage is
	                          false, and the worker charges the estimate
	                          (SPEC §13, task_judge_usage) */
	bool throttled;        /* the answer is a throttle whatever its status (Bedrock's
	                        ThrottlingException as a 400): the provider is parked
	                        as for a 429 (health_throttle) */
	char *error_message;   /* new: provider's error text for a non-OK class, no secrets */
	char *refusal;         /* new: the model's refusal text (finish_reason refusal), or NULL */
	struct completion_tool_call *tool_calls; /* new array, NULL when none */
	size_t n_tool_calls;
};
/* Appends a tool call (strings copied; arguments NULL is "{}"). */
void completion_add_tool_call(struct completion *c, const char *id, const char *name,
                              const char *arguments, size_t arguments_len);
/* Appends the text of v, a JSON value of a parsed answer, without the
 * blanks between its tokens (strings and numbers kept as written). */
void provider_buf_compact(struct buf *b, const struct jval *v);
/* Appends a tool call read from an answer: id (a string, or absent: one is
 * made up), name (a non-empty string) and args (a JSON object, taken as its
 * text, or a string holding the arguments as OpenAI sends them; absent or
 * null is "{}"). Returns -1 (nothing added) when they are not of those
 * types. */
int completion_take_tool_call(struct completion *c, const struct jval *id, const struct jval *name,
                              const struct jval *args);
void completion_clear(struct completion *c);

struct provider_batch; /* provider_batch.h */

struct provider {
	const char *type; /* the config's provider type: "openai", ... */

	/* The parts the format sends by URL: bits (1u << PART_IMAGE) and
	 * (1u << PART_DOCUMENT). A URL part of another kind must be fetched
	 * (job_part.fetched) before build_request, which sends its bytes. */
	unsigned url_parts;

	/* Builds the request of one attempt of job on model m with the output limit
	 * max_tokens. Returns 0, or -1 with errstr set (the job cannot be expressed
	 * in this format; the model is skipped). */
	int (*build_request)(const struct provider_conf *p, const struct model_conf *m,
	                     const struct job *job, int64_t max_tokens, struct http_request *req,
	                     char *errstr, size_t errstr_size);

	/* Parses the response of one attempt (any status). Fills out and returns
	 * its class. Never fails: a malformed body is RESPONSE_INVALID (2xx) or the
	 * class of the status. Usage is filled whenever the body reports it, even
	 * for an error, so that a billed failure is still charged. m may be NULL
	 * for a status that is not 2xx (the error answer of a batch call, which
	 * is no model's: provider_batch.h). */
	enum response_class (*parse_response)(const struct model_conf *m, long status,
	                                      const char *body, size_t len, struct completion *out);

	/* The format's batch API (SPEC §14), NULL when it has none. */
	const struct provider_batch *batch;
};

/* Adds to req what a provider's configuration asks of every call (SPEC
 * §15), once its URL is built: the key in the header p->auth_header names,
 * else default_name ("Authorization" carries "Bearer KEY", any other name
 * the key as it is; nothing without a key), the extra header lines, and the
 * query parameters appended to the URL. */
void provider_request_common(const struct provider_conf *p, struct http_request *req,
                             const char *default_name);

/* The clock Bedrock's signatures take their time from (unix seconds): the
 * wall clock; a test sets its own, so that a signature can be expected. */
extern int64_t (*provider_bedrock_now_s)(void);

/* Shared helpers for the wire formats. */
/* The class of a status that is not 2xx, before looking at the body. */
enum response_class provider_class_of_status(long status);
/* Does an error text read like a context-length overflow? */
bool provider_text_is_context_overflow(const char *text);

/* Sets out->error_message from an error body's type and message (either
 * may be NULL; msg_len bytes of msg are kept): "TYPE: MESSAGE", the one
 * there is, or the status when the body (json: it parsed) says nothing. */
void provider_set_error_of(struct completion *out, long status, bool json, const char *type,
                           const char *msg, size_t msg_len);

/* A format could not read usage from v, its answer's usage member: when v
 * is there (not absent, not null), the answer did report usage, and
 * out->usage_impossible is set. Call it when the usage parse failed. */
void provider_usage_unreadable(struct completion *out, const struct jval *v);

/* Ends a parse_response: an answer found RESPONSE_INVALID keeps no
 * content; doc is freed. Returns cls. */
enum response_class provider_parse_end(struct jdoc *doc, struct completion *out,
                                       enum response_class cls);

/* The longest error_message kept, in bytes (cut on a character boundary). */
#define PROVIDER_ERROR_MAX 512

/* Sets out->error_message (replacing any) from a printf format. The text is
 * made safe to log and to put in a result: control characters become spaces,
 * anything that looks like an API key ("sk-...", "AIza...") is replaced with
 * "[redacted]", and it is cut to PROVIDER_ERROR_MAX bytes. It must still never
 * be built from request headers. */
void provider_set_error(struct completion *out, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Appends the job's `stop` (a string or an array of strings, borrowed) to b
 * as a JSON array of strings, empty strings left out. Returns how many were
 * written; 0 writes nothing at all, so the caller can omit the key. */
size_t provider_buf_stop_array(struct buf *b, const char *key_prefix, const json_t *stop);

/* The output limit to send: max_tokens when positive, else the model's
 * default_max_tokens, else 1024. */
int64_t provider_max_tokens(const struct model_conf *m, int64_t max_tokens);

/* The thinking tokens of the job's reasoning_effort on model m (the model's
 * thinking_budget_*), 0 when the job sets none. */
int64_t provider_thinking_budget(const struct model_conf *m, const struct job *job);

/* The call's output limit: provider_max_tokens() plus the thinking budget,
 * what the router's route_entry.output_tokens assumes (SPEC §13). */
int64_t provider_output_limit(const struct model_conf *m, const struct job *job,
                              int64_t max_tokens);

/* How an image or a document part goes on the wire. */
struct provider_media {
	const char *url;        /* by URL: the format takes this kind of part by URL */
	const char *data;       /* else its bytes in base64 (the part's own, or fetched) */
	size_t data_len;        /* bytes of data */
	const char *media_type; /* of data ("image/png", "application/pdf", ...) */
};
/* Fills out for part (strings borrowed from the part). url_parts is the
 * format's provider.url_parts. A URL part of a kind the format does not take
 * by URL goes as the bytes the worker fetched for it; when there are none,
 * -1 is returned with errstr naming the part (the URL is never sent to an
 * API that would refuse it). */
int provider_part_media(unsigned url_parts, const struct job_part *part, struct provider_media *out,
                        char *errstr, size_t errstr_size);
/* Appends media's bytes as a data: URL, quotes included (OpenAI's shape). */
void provider_buf_data_url(struct buf *b, const struct provider_media *media);

/* Appends s to b with every byte outside RFC 3986's unreserved set
 * percent-encoded: a path segment or a query value made of anything. */
void provider_buf_path_segment(struct buf *b, const char *s);

/* Appends v as compact JSON (object keys in their order). */
void provider_buf_json(struct buf *b, const json_t *v);

/* A function of job->tools (strings borrowed from the job). */
struct provider_tool {
	const char *name;
	const char *description;  /* NULL when absent */
	const json_t *parameters; /* a JSON Schema object, NULL when absent */
};
/* The i-th of the job's json_array_size(job->tools) tools. */
void provider_tool_at(const struct job *job, size_t i, struct provider_tool *out);
/* Fills out with the i-th tool and appends it as the start of an object
 * (a comma first unless i is 0): {"name":N and ,"description":D when it has
 * one. The caller adds the parameters in its format and the closing }. */
void provider_buf_tool_open(struct buf *b, const struct job *job, size_t i,
                            struct provider_tool *out);

/* A tool call an assistant message made (strings borrowed from the job). */
struct provider_call {
	const char *id;
	const char *name;
	const char *arguments; /* a JSON object as text (checked by job_decode) */
};
/* The k-th of msg's json_array_size(msg->tool_calls) calls. */
void provider_call_at(const struct job_message *msg, size_t k, struct provider_call *out);
/* Appends call arguments (a JSON object as text) as that object, compact;
 * "{}" when they do not parse. */
void provider_buf_arguments(struct buf *b, const char *arguments);

/* The JSON Schema dialects of the native structured outputs that do not
 * take OpenAI's strict subset as it is. */
enum provider_schema_dialect {
	/* Anthropic structured outputs: every object gets additionalProperties
	 * false; numeric, length and count limits (minItems above 1 included)
	 * and pattern are left out; so is any keyword outside type,
	 * properties, required, additionalProperties, items, enum, const,
	 * anyOf, allOf, $ref, $defs, definitions, title, description and
	 * default. */
	SCHEMA_ANTHROPIC,
	/* Gemini responseJsonSchema / parametersJsonSchema: only the keywords
	 * Google lists ($id, $defs, $ref, $anchor, type, format, title,
	 * description, enum, items, prefixItems, minItems, maxItems, minimum,
	 * maximum, anyOf, oneOf, properties, additionalProperties, required,
	 * propertyOrdering) are kept; const becomes a one-value enum,
	 * definitions become $defs (and #/definitions/ references #/$defs/), an
	 * enum of anything but strings and numbers is left out, and a schema
	 * with $ref keeps only its $ keywords. */
	SCHEMA_GEMINI,
};
/* Appends schema adjusted to dialect d, compact. Leaving a keyword out
 * only widens what the model may answer: the worker still validates the
 * answer against the job's own schema (SPEC §13). */
void provider_buf_schema(struct buf *b, const json_t *schema, enum provider_schema_dialect d);

/* The instruction added for a JSON-only answer where the wire format has no
 * JSON mode (anthropic) or wants the word "JSON" in the prompt (openai). */
#define PROVIDER_JSON_INSTRUCTION                                                                  \
	"Respond with a single valid JSON object and nothing else: no text before or after "       \
	"it, no Markdown code fences."

/* ---------------------------------------------------------------- the answer tool
 *
 * What Anthropic's Messages API and Bedrock's Converse API (whose Claude
 * models are Anthropic's) share: a json_schema answer as a forced tool on a
 * model without native structured outputs, and a thinking budget with
 * Anthropic's rules.
 *
 * The tool that carries a json_schema answer. A response does not say what
 * the request asked, so the name is fixed and reserved: a tool use of this
 * name is taken for the answer. */
#define PROVIDER_ANSWER_TOOL "promptyard_answer"
#define PROVIDER_ANSWER_INSTRUCTION                                                                \
	"Give your final answer by calling the tool " PROVIDER_ANSWER_TOOL                         \
	" with the answer as its input."
/* Anthropic's least budget_tokens. */
#define PROVIDER_THINKING_MIN 1024

/* What a job asks of one request, worked out before it is written. */
struct provider_plan {
	bool answer_tool; /* json_schema as the forced tool PROVIDER_ANSWER_TOOL */
	bool native;      /* json_schema as the format's native structured output */
	int64_t thinking; /* thinking budget_tokens, 0: no thinking */
};
/* Works out the plan of job on model m (fmt names the format in errstr):
 * json_schema is native on a model with structured_outputs, else the
 * answer tool (whose schema must then be of type object, as tools take);
 * with thinking (the format sends Anthropic's thinking to this model) a
 * reasoning_effort is the model's thinking budget, unless the
 * conversation's last assistant turn made tool calls (the API would want
 * that turn to start with the thinking block that came before the calls,
 * which a job cannot carry). Fails, with errstr set, on a budget below
 * PROVIDER_THINKING_MIN, on a required or named tool_choice with thinking
 * (thinking takes only auto and none), and on a job tool named
 * PROVIDER_ANSWER_TOOL. */
int provider_plan_make(const char *fmt, const struct model_conf *m, const struct job *job,
                       bool thinking, struct provider_plan *plan, char *errstr, size_t errstr_size);

/* The tool choice a request sends, in no format yet. */
enum provider_choice {
	PROVIDER_CHOICE_UNSET, /* none is sent */
	PROVIDER_CHOICE_AUTO,
	PROVIDER_CHOICE_NONE,
	PROVIDER_CHOICE_ANY,  /* some tool (OpenAI's required) */
	PROVIDER_CHOICE_TOOL, /* the tool *name */
};
/* The job's tool_choice under the plan. With the answer tool the model
 * must call a tool: the answer, or one of the job's when the job allows
 * them (job_tools: the job sends tools). With thinking it is auto (the
 * system prompt then asks for the answer tool). *name is borrowed. */
enum provider_choice provider_plan_choice(const struct job *job, const struct provider_plan *plan,
                                          bool job_tools, const char **name);

/* Appends the system text (provider_buf_system) and the instruction the
 * job needs where the format has no JSON mode: PROVIDER_JSON_INSTRUCTION
 * for json_object, PROVIDER_ANSWER_INSTRUCTION with the answer tool. */
void provider_buf_system_plan(struct buf *b, const struct job *job,
                              const struct provider_plan *plan);

/* How a format writes one tool definition: open, then {"name":N and
 * ,"description":D (provider_buf_tool_open), then schema, the parameters
 * (an empty object schema when the tool has none), then close. */
struct provider_tool_shape {
	const char *open, *schema, *close;
};
/* Appends the job's tools (with job_tools) and the answer tool (with
 * answer_tool; its input schema the job's schema), comma-separated, in
 * shape. Returns how many were written. */
size_t provider_buf_tool_list(struct buf *b, const struct job *job, bool job_tools,
                              bool answer_tool, const struct provider_tool_shape *shape);

/* One content block of an answer, as a format reads it. */
struct provider_answer_block {
	const struct jval *text;              /* a text block's text, else NULL */
	bool tool_use;                        /* a tool use block: */
	const struct jval *id, *name, *input; /* its id, name and input */
};
/* Reads block (an object) into out, which is zeroed; a block that is
 * neither text nor a tool use (thinking, ...) is left so. */
typedef void provider_block_reader(const struct jval *block, struct provider_answer_block *out);
/* How a format of content blocks (Anthropic's Messages API, Bedrock's
 * Converse API) lays out an answer. */
struct provider_block_format {
	/* usage: the usage object's member of the root, then its counts:
	 * uncached input (required), cache reads, cache writes, output. */
	const char *usage[5];
	const char *content[4]; /* the members from the root to the blocks, NULL-ended */
	const char *stop;       /* the stop reason's member of the root */
	provider_block_reader *read;
	enum finish_reason (*map_stop)(const char *reason); /* reason NULL: none */
	/* The class of an answer whose status is not 2xx (cls: the status's);
	 * sets out's error message. */
	enum response_class (*error)(long status, enum response_class cls, struct jdoc *d,
	                             struct completion *out);
	/* Optional: is this 2xx body (an object) an error? Then it sets out's
	 * error message. */
	bool (*is_error)(struct jdoc *d, const struct jval *root, struct completion *out);
};
/* The parse_response of format f. Usage is read whatever the status: the
 * input total is the uncached input plus the cache reads and writes. A
 * 2xx answer must be a JSON object that is no error, with that usage, a
 * stop reason that is a string, null or absent, and an array of blocks
 * whose texts are strings and whose tool uses are well-formed. Its texts
 * joined are the content and its tool uses tool calls, but the first
 * PROVIDER_ANSWER_TOOL call with an object input: that is the answer, the
 * whole content (the text beside it left out), and a tool_use stop with
 * no other call is then a stop. A refusal stop makes the text the
 * refusal ("The model declined to answer." when there is none) and the
 * content "". */
enum response_class provider_parse_blocks(const struct provider_block_format *f, long status,
                                          const char *body, size_t len, struct completion *out);

/* Appends a tool call as a tool use block: open, the id, ,"name":, the
 * name, ,"input":, the arguments as an object, close; e.g. open
 * {"type":"tool_use","id": and close } (Anthropic). */
void provider_buf_tool_use(struct buf *b, const struct provider_call *call, const char *open,
                           const char *close);

/* For the formats that take system messages out of the conversation and need
 * user and assistant turns to alternate (anthropic, gemini).
 *
 * A message whose text is empty or only whitespace, with no image, no
 * document and no tool call, and that is no tool result, is blank: it
 * carries nothing, and both APIs refuse an empty text block, so it is left
 * out; so is a blank text part. */
bool provider_message_is_blank(const struct job_message *msg);
bool provider_text_is_blank(const char *text, size_t len);

/* Appends the content of every non-blank system message to b as plain text
 * (not JSON), separated by a blank line ("\n\n"), wherever they stand in the
 * conversation. Returns the number of messages appended. */
size_t provider_buf_system(struct buf *b, const struct job *job);

/* One turn: the longest run of non-blank messages of one side, from
 * job->messages[first] to [end - 1]; system and blank messages inside the
 * run are passed over (system ones are hoisted, see above), so consecutive
 * messages of a side merge into one turn. A tool result is on the user's
 * side (both formats carry tool results in a user turn), so role is
 * ROLE_USER or ROLE_ASSISTANT. n counts the messages the turn carries. */
struct provider_turn {
	enum role role;
	size_t first, end, n;
};
/* Does msg (one of job->messages[t->first .. t->end)) belong to turn t? */
bool provider_turn_takes(const struct provider_turn *t, const struct job_message *msg);
/* Finds the turn that starts at or after *pos and moves *pos past it.
 * Returns false when no turn is left. Start with *pos = 0. */
bool provider_next_turn(const struct job *job, size_t *pos, struct provider_turn *turn);

/* How a format writes the blocks of a turn (Anthropic's content blocks,
 * Converse's content blocks). Each appends one block; the commas between
 * blocks are the caller's. */
struct provider_block_ops {
	void (*text)(struct buf *b, const char *text, size_t len);
	/* An image or document part: -1 with errstr set when it cannot go. */
	int (*media)(struct buf *b, const struct job_part *part, char *errstr, size_t errstr_size);
	void (*tool_use)(struct buf *b, const struct provider_call *call);
	void (*tool_result)(struct buf *b, const struct job_message *msg);
};
/* Appends the blocks of turn t, comma-separated, without brackets: the
 * tool results first (both APIs want them before any other block of a
 * user turn), then each message's text (each non-blank text part, or its
 * content), its images and documents, and its tool calls. A final
 * assistant turn (last) is a prefill, which the APIs refuse with trailing
 * whitespace: its last text is cut of it. Returns 0, or -1 with errstr
 * set by ops->media. */
int provider_buf_turn_blocks(struct buf *b, const struct job *job, const struct provider_turn *t,
                             bool last, const struct provider_block_ops *ops, char *errstr,
                             size_t errstr_size);

#endif
