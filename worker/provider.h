/* provider: the table every wire format exports (provider_openai.c, ...).
 *
 * The router and the HTTP loop see only this table. A provider builds the HTTP
 * request for one attempt and turns the HTTP response into a normalized
 * completion or a classified failure. Adding a wire format is adding one file
 * and one line in provider.c. */
#ifndef PROMPTYARD_PROVIDER_H
#define PROMPTYARD_PROVIDER_H

#include "buf.h"
#include "config.h"
#include "http.h"
#include "job.h"
#include "jscan.h"
#include "money.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The common finish_reason set of results. */
enum finish_reason {
	FINISH_STOP,
	FINISH_LENGTH,
	FINISH_CONTENT_FILTER,
	FINISH_TOOL_CALLS,
	FINISH_OTHER
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

struct completion {
	char *content; /* new, UTF-8; NULL if none */
	enum finish_reason finish_reason;
	struct usage usage;
	bool has_usage;      /* the provider reported usage: the attempt is billed */
	char *error_message; /* new: provider's error text for a non-OK class, no secrets */
};
void completion_clear(struct completion *c);

struct provider {
	const char *type; /* the config's provider type: "openai", ... */

	/* Builds the request of one attempt of job on model m with the output limit
	 * max_tokens. Returns 0, or -1 with errstr set (the job cannot be expressed
	 * in this format; the model is skipped). */
	int (*build_request)(const struct provider_conf *p, const struct model_conf *m,
	                     const struct job *job, int64_t max_tokens, struct http_request *req,
	                     char *errstr, size_t errstr_size);

	/* Parses the response of one attempt (any status). Fills out and returns
	 * its class. Never fails: a malformed body is RESPONSE_INVALID (2xx) or the
	 * class of the status. Usage is filled whenever the body reports it, even
	 * for an error, so that a billed failure is still charged. */
	enum response_class (*parse_response)(const struct model_conf *m, long status,
	                                      const char *body, size_t len, struct completion *out);
};

/* The table for a config's provider type, or NULL. */
const struct provider *provider_lookup(const char *type);

extern const struct provider provider_openai;
extern const struct provider provider_anthropic;
extern const struct provider provider_gemini;

/* Shared helpers for the wire formats. */
/* The class of a status that is not 2xx, before looking at the body. */
enum response_class provider_class_of_status(long status);
/* Does an error text read like a context-length overflow? */
bool provider_text_is_context_overflow(const char *text);

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

/* The instruction added for a JSON-only answer where the wire format has no
 * JSON mode (anthropic) or wants the word "JSON" in the prompt (openai). */
#define PROVIDER_JSON_INSTRUCTION                                                                  \
	"Respond with a single valid JSON object and nothing else: no text before or after "       \
	"it, no Markdown code fences."

/* For the formats that take system messages out of the conversation and need
 * user and assistant turns to alternate (anthropic, gemini).
 *
 * A message whose content is empty or only whitespace is blank: it carries
 * nothing, and both APIs refuse an empty text block, so it is left out. */
bool provider_message_is_blank(const struct job_message *msg);

/* Appends the content of every non-blank system message to b as plain text
 * (not JSON), separated by a blank line ("\n\n"), wherever they stand in the
 * conversation. Returns the number of messages appended. */
size_t provider_buf_system(struct buf *b, const struct job *job);

/* One turn: the longest run of non-blank user or assistant messages with one
 * role, from job->messages[first] to [end - 1]; system and blank messages
 * inside the run are passed over (system ones are hoisted, see above), so
 * consecutive messages of a role merge into one turn. n counts the messages
 * the turn carries. */
struct provider_turn {
	enum role role;
	size_t first, end, n;
};
/* Finds the turn that starts at or after *pos and moves *pos past it.
 * Returns false when no turn is left. Start with *pos = 0. */
bool provider_next_turn(const struct job *job, size_t *pos, struct provider_turn *turn);

#endif
