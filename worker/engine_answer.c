/* engine_answer: what a provider's answer is worth, before it is charged and
 * kept (SPEC §13).
 *
 * Two questions, asked of every call that came back with a status:
 *
 * - Is its usage possible? An answer that says it read more than the model's
 *   context, wrote more than the call allowed, counts in ways that do not
 *   add up (cached above input, thinking above output), or reports usage
 *   its format cannot read as counts (negative, fractional, strings:
 *   completion.usage_impossible) is a provider bug or an attack on the
 *   budget. It is invalid_response, and it is charged at
 *   the attempt's estimate, what its reservation held: no answer can charge
 *   a budget more than the call could have cost. Its cost record says
 *   "estimated": true and carries the estimate's token counts, not the
 *   absurd ones.
 *
 * - Does its content keep the job's promise? A json_object or json_schema
 *   job's content must parse as JSON (a single Markdown code fence around it
 *   is taken off, as models without a JSON mode often add one), and a
 *   json_schema job's must validate against its schema. Content that does
 *   not is invalid_output: billed and charged like any answer, and retryable
 *   like a 5xx. So every ok result of a json_schema job holds a parsed that
 *   validates. An answer made of tool calls answers with the calls and has
 *   nothing to parse; a refusal's empty content does not parse, so a json
 *   job that is refused moves on down the chain. */
#include "engine_int.h"

#include "jsonschema.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

/* Whether usage could come from a call of model m with this output limit. */
static bool usage_possible(const struct usage *u, const struct model_conf *m, int64_t output_limit)
{
	if (u->input_tokens < 0 || u->output_tokens < 0 || u->cached_input_tokens < 0 ||
	    u->cache_write_tokens < 0 || u->reasoning_tokens < 0)
		return false;
	if (u->input_tokens > m->context_tokens || u->output_tokens > output_limit)
		return false;
	if (u->cached_input_tokens > u->input_tokens || u->cache_write_tokens > u->input_tokens ||
	    u->reasoning_tokens > u->output_tokens)
		return false;
	return true;
}

void task_judge_usage(struct task *t, struct attempt_rec *a, const struct model_conf *m,
                      int64_t est_input, int64_t output_limit)
{
	struct completion *c = &t->completion;
	if (!c->usage_impossible && (!c->has_usage || usage_possible(&c->usage, m, output_limit)))
		return;
	char in[24] = "unreadable", out[24] = "unreadable";
	if (c->has_usage) {
		snprintf(in, sizeof in, "%lld", (long long)c->usage.input_tokens);
		snprintf(out, sizeof out, "%lld", (long long)c->usage.output_tokens);
	}
	log_warn("impossible usage in an answer: charged at the estimate", "id", t->id, "model",
	         m->name, "input_tokens", in, "output_tokens", out, NULL);
	/* The estimate's counts stand in for the answer's, billed. */
	c->usage = (struct usage){.input_tokens = est_input, .output_tokens = output_limit};
	c->has_usage = true;
	a->estimated = true;
	if (a->outcome != OUTCOME_OK)
		return; /* a failure already (its status says which: a 401 still opens
		           the circuit, a 429 still throttles), or invalid for its usage */
	free(c->error_message);
	c->error_message = xstrdup("the answer's usage is more than the call allows");
	a->outcome = OUTCOME_INVALID_RESPONSE;
	t->cls = RESPONSE_INVALID;
}

/* The text between a Markdown code fence ("```json\n...\n```"), or the
 * whole text when it is not fenced. */
static const char *unfence(const char *s, size_t *len)
{
	size_t n = *len;
	while (n && strchr(" \t\r\n", s[n - 1]))
		n--;
	while (n && strchr(" \t\r\n", *s)) {
		s++;
		n--;
	}
	if (n < 6 || strncmp(s, "```", 3) != 0 || strncmp(s + n - 3, "```", 3) != 0) {
		*len = n;
		return s;
	}
	const char *nl = memchr(s, '\n', n);
	if (!nl) {
		*len = n;
		return s;
	}
	*len = (size_t)(s + n - 3 - (nl + 1));
	return nl + 1;
}

void task_judge_output(struct task *t, struct attempt_rec *a)
{
	struct completion *c = &t->completion;
	free(t->parsed_json);
	t->parsed_json = NULL;
	if (a->outcome != OUTCOME_OK || !t->job.json_response || c->n_tool_calls)
		return;
	size_t len = c->content ? strlen(c->content) : 0;
	const char *text = unfence(c->content ? c->content : "", &len);
	json_error_t jerr;
	json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	char why[256] = "";
	/* jansson's text quotes the content ("near ..."): never put it in a log. */
	if (!v)
		snprintf(why, sizeof why, "the content is not JSON (line %d, column %d)", jerr.line,
		         jerr.column);
	else if (t->job.validator &&
	         jsonschema_validate(t->job.validator, v, why, sizeof why) != 0) {
		/* why says where and which keyword, never a value */
	} else
		t->parsed_json = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(v);
	if (t->parsed_json)
		return;
	free(c->error_message);
	c->error_message = xstrdup(why[0] ? why : "the content does not validate");
	a->outcome = OUTCOME_INVALID_OUTPUT;
	t->cls = RESPONSE_INVALID;
	log_info("answer breaks the job's response_format", "id", t->id, "why", why, NULL);
}
