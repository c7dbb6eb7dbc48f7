/* provider_bedrock: Amazon Bedrock's Converse API (SPEC §15).
 *
 * Request:  POST {base_url}/model/{id}/converse, the id one path segment
 *           encoded as AWS SDKs encode it (sigv4_buf_path_segment: ':' is
 *           "%3A"), with Content-Type: application/json and a JSON body
 *           {messages, system?, inferenceConfig, toolConfig?,
 *            additionalModelRequestFields?, outputConfig?}, signed with AWS
 *           Signature V4 (service "bedrock", the provider's region) by
 *           worker/sigv4.c at build time: X-Amz-Date, X-Amz-Security-Token
 *           (with a session token) and Authorization are added.
 * Response: output.message.content's text and toolUse blocks, stopReason,
 *           and usage, whose inputTokens leaves out cache reads and writes.
 *
 * Credentials, decided here: with api_key_env = "" (the config then reads
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN) every call
 * is signed with SigV4. With api_key_env set, its key is a Bedrock API key
 * (AWS_BEARER_TOKEN_BEDROCK, as AWS's SDKs name it): it goes as
 * "Authorization: Bearer KEY" (or in auth_header) and nothing is signed;
 * Bedrock takes either (its service model lists sigv4 and httpBearerAuth).
 * Only Content-Type is signed besides what the signer adds (host,
 * x-amz-date, x-amz-security-token): the provider's extra headers go
 * unsigned, as AWS checks only the headers a signature names, so no client
 * can break a signature by how it sends them. The signature is good for
 * 15 minutes from its X-Amz-Date, far longer than a request waits between
 * its build and its send.
 *
 * How a job becomes a Converse request, decided here (most of it as
 * Anthropic's Messages API, whose logic provider.c keeps for both):
 * - Every system message goes to `system` as one text block, in order,
 *   separated by a blank line. Consecutive messages of one side merge into
 *   one turn (Converse wants user and assistant to alternate), each text
 *   part or message its own text block; blank ones are left out (Converse
 *   refuses blank text); a final assistant turn is a prefill, its trailing
 *   whitespace cut.
 * - Images are image blocks {format: png|jpeg|gif|webp, source: {bytes}},
 *   PDFs document blocks {format: pdf, name: "document-M-P" (the message
 *   and part: unique, and of the characters Bedrock allows), source:
 *   {bytes}}. Converse takes no https URL (url_parts is 0): the worker
 *   fetches a part given by URL and its bytes are sent.
 * - An assistant's tool calls are toolUse {toolUseId, name, input} blocks
 *   after its text; tool messages are toolResult {toolUseId, content:
 *   [{text}]} blocks (content [] for an empty result), first in their user
 *   turn.
 * - inferenceConfig {maxTokens, temperature (above 1 sent as 1, Converse's
 *   maximum), topP, stopSequences}.
 * - tools: toolConfig.tools [{toolSpec: {name, description, inputSchema:
 *   {json: parameters}}}]; tool_choice auto is {auto: {}}, required {any:
 *   {}}, a function {tool: {name}}. Converse has no "none": with none the
 *   tools are left out, unless the conversation holds tool calls or
 *   results, for which Converse wants a toolConfig: then they are sent with
 *   no toolChoice, and the model may still call one. A conversation with
 *   tool calls but a job with no tools gets one stub tool per name called
 *   (an object schema with no properties), for the same reason.
 * - json_object: no JSON mode in Converse, so PROVIDER_JSON_INSTRUCTION is
 *   appended to the system prompt. json_schema on a model with
 *   structured_outputs (the model key) is Converse's structured output,
 *   outputConfig.textFormat {type: json_schema, structure: {jsonSchema:
 *   {schema: the schema as a JSON string, name}}}, the schema in
 *   SCHEMA_ANTHROPIC's dialect (Bedrock's subset is Anthropic's, objects
 *   closed); on another model it is Anthropic's forced answer tool
 *   (PROVIDER_ANSWER_TOOL, provider.h).
 * - reasoning_effort, by the model family its id names (the "us."/"eu."/
 *   "global." inference profiles and ARNs naming a model included):
 *   Anthropic's Claude ("anthropic.") get additionalModelRequestFields
 *   {thinking: {type: enabled, budget_tokens: the model's thinking
 *   budget}}, maxTokens the job's plus the budget, under Anthropic's rules
 *   (provider_plan_make: no temperature or topP, no forced tool choice).
 *   Amazon Nova 2 ("amazon.nova-2") get {reasoningConfig: {type: enabled,
 *   maxReasoningEffort: low|medium|high}}, maxTokens the job's plus the
 *   budget; at high Nova wants no maxTokens, temperature or topP, so none
 *   is sent (an answer longer than the estimate covers is then impossible
 *   usage, SPEC §13). Other families (Llama, Mistral, DeepSeek-R1, ...)
 *   reason on their own or through parameters of their own: nothing is
 *   sent for them; nor for an application inference profile ARN, which
 *   does not say its model.
 *
 * Response, decided here:
 * - reasoningContent blocks (and any block but text and toolUse) are never
 *   content; toolUse blocks are tool calls (arguments: the input as
 *   compact JSON), or the answer of the answer tool.
 * - stopReason: end_turn and stop_sequence are stop; max_tokens and
 *   model_context_window_exceeded length; tool_use tool_calls;
 *   guardrail_intervened and content_filtered content_filter; anything
 *   else (malformed_model_output, malformed_tool_use, what comes next)
 *   other.
 * - Usage: inputTokens counts only the uncached input; the total the rest
 *   of promptyard means is it plus cacheReadInputTokens and
 *   cacheWriteInputTokens. outputTokens includes any thinking; Bedrock does
 *   not say how much, so reasoning_tokens stays 0.
 *
 * Classes. AWS names an error in the x-amzn-ErrorType header, which a
 * provider does not see, and in the body's __type (or code) on its JSON
 * protocols; the status says most of it: ThrottlingException and
 * ModelNotReadyException are 429s, ServiceUnavailable 503, InternalServer
 * 500, ModelTimeout 408, ModelError 424 (the model failed: retryable too),
 * AccessDenied, UnrecognizedClient and the signature errors 403,
 * ValidationException 400, ResourceNotFound 404. By the body's type first:
 * a throttling, quota or server type is retryable whatever the status (a
 * throttle that comes as a 400 is still one, and is marked throttled: the
 * worker parks the provider as for a 429); an auth or signature type is
 * RESPONSE_AUTH; ValidationException is a context overflow when its
 * message says the input is too long ("Input is too long for requested
 * model", "input length and max_tokens exceed context limit", the shared
 * phrases), else rejected. Without a type, a 4xx whose message reads like
 * a throttle ("Too many requests", "Rate exceeded", "... please wait
 * before trying again", "... exceeds the service quota ...") is a
 * retryable throttle, then one that reads like an overflow is one. An
 * InvalidSignatureException message quotes the canonical request, signed
 * header values (the session token) included: the message is cut before
 * it. */
#include "provider.h"
#include "sigv4.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int64_t wall_clock_s(void)
{
	return (int64_t)time(NULL);
}

int64_t (*provider_bedrock_now_s)(void) = wall_clock_s;

/* The model families whose reasoning parameters this format knows. */
enum family {
	FAMILY_OTHER,
	FAMILY_ANTHROPIC, /* Claude: thinking, Anthropic's rules */
	FAMILY_NOVA2,     /* Amazon Nova 2: reasoningConfig */
};

static enum family family_of(const struct model_conf *m)
{
	if (strstr(m->id, "anthropic."))
		return FAMILY_ANTHROPIC;
	if (strstr(m->id, "amazon.nova-2"))
		return FAMILY_NOVA2;
	return FAMILY_OTHER;
}

/* ---------------------------------------------------------------- request */

static void put_text(struct buf *b, const char *text, size_t len)
{
	buf_puts(b, "{\"text\":");
	buf_json_str(b, text, len);
	buf_puts(b, "}");
}

/* The format of a media type: what follows its '/' ("image/png" is "png",
 * "application/pdf" "pdf"), which is Converse's name for every type a
 * job's part may have. */
static const char *media_format(const char *media_type)
{
	const char *slash = strchr(media_type, '/');
	return slash ? slash + 1 : media_type;
}

static int put_media(struct buf *b, const struct job_part *part, char *errstr, size_t errstr_size)
{
	struct provider_media media;
	if (provider_part_media(provider_bedrock.url_parts, part, &media, errstr, errstr_size) != 0)
		return -1;
	if (part->type == PART_IMAGE)
		buf_printf(b, "{\"image\":{\"format\":\"%s\"", media_format(media.media_type));
	else
		buf_printf(b, "{\"document\":{\"format\":\"%s\",\"name\":\"document-%zu-%zu\"",
		           media_format(media.media_type), part->msg, part->index);
	buf_puts(b, ",\"source\":{\"bytes\":\"");
	buf_append(b, media.data, media.data_len); /* base64: no escape needed */
	buf_puts(b, "\"}}}");
	return 0;
}

static void put_tool_use(struct buf *b, const struct provider_call *call)
{
	provider_buf_tool_use(b, call, "{\"toolUse\":{\"toolUseId\":", "}}");
}

static void put_tool_result(struct buf *b, const struct job_message *msg)
{
	buf_puts(b, "{\"toolResult\":{\"toolUseId\":");
	buf_json_str(b, msg->tool_call_id, strlen(msg->tool_call_id));
	buf_puts(b, ",\"content\":[");
	if (!provider_text_is_blank(msg->content, msg->content_len))
		put_text(b, msg->content, msg->content_len);
	buf_puts(b, "]}}");
}

static const struct provider_block_ops block_ops = {
        .text = put_text,
        .media = put_media,
        .tool_use = put_tool_use,
        .tool_result = put_tool_result,
};

/* Does the conversation hold tool calls or tool results? Converse then
 * wants a toolConfig. */
static bool has_tool_blocks(const struct job *job)
{
	for (size_t i = 0; i < job->n_messages; i++)
		if (job->messages[i].role == ROLE_TOOL || job->messages[i].tool_calls)
			return true;
	return false;
}

/* Appends a stub toolSpec for every distinct name the conversation's
 * calls use, after n tools already written. Returns how many. */
static size_t put_stub_tools(struct buf *b, const struct job *job, size_t n)
{
	json_t *seen = json_object();
	size_t written = 0;
	for (size_t i = 0; i < job->n_messages; i++) {
		const struct job_message *msg = &job->messages[i];
		for (size_t k = 0; k < json_array_size(msg->tool_calls); k++) {
			struct provider_call call;
			provider_call_at(msg, k, &call);
			if (json_object_get(seen, call.name))
				continue;
			json_object_set_new(seen, call.name, json_true());
			buf_puts(b, n + written++ ? ",{\"toolSpec\":{\"name\":"
			                          : "{\"toolSpec\":{\"name\":");
			buf_json_str(b, call.name, strlen(call.name));
			buf_puts(b, ",\"inputSchema\":{\"json\":{\"type\":\"object\","
			            "\"properties\":{}}}}}");
		}
	}
	json_decref(seen);
	return written;
}

/* toolConfig: the tools to send (the job's, stubs, the answer tool) and
 * the choice. */
static void put_tool_config(struct buf *b, const struct job *job, const struct provider_plan *plan)
{
	static const struct provider_tool_shape shape = {
	        "{\"toolSpec\":", ",\"inputSchema\":{\"json\":", "}}}"};
	bool history = has_tool_blocks(job);
	bool job_tools = json_array_size(job->tools) > 0 &&
	                 (job->tool_choice != TOOL_CHOICE_NONE || history);
	struct buf tools = {0};
	const char *name;
	size_t n = provider_buf_tool_list(&tools, job, job_tools, plan->answer_tool, &shape);
	if (history && !job_tools)
		n += put_stub_tools(&tools, job, n);
	if (n == 0)
		return;
	buf_puts(b, ",\"toolConfig\":{\"tools\":[");
	buf_append(b, tools.data, tools.len);
	buf_puts(b, "]");
	buf_free(&tools);
	switch (provider_plan_choice(job, plan, job_tools, &name)) {
	case PROVIDER_CHOICE_UNSET:
	case PROVIDER_CHOICE_NONE: break; /* Converse has no none */
	case PROVIDER_CHOICE_AUTO: buf_puts(b, ",\"toolChoice\":{\"auto\":{}}"); break;
	case PROVIDER_CHOICE_ANY: buf_puts(b, ",\"toolChoice\":{\"any\":{}}"); break;
	case PROVIDER_CHOICE_TOOL:
		buf_puts(b, ",\"toolChoice\":{\"tool\":{\"name\":");
		buf_json_str(b, name, strlen(name));
		buf_puts(b, "}}");
		break;
	}
	buf_puts(b, "}");
}

/* outputConfig: Converse's structured output, the schema as a string. */
static void put_output_config(struct buf *b, const struct job *job)
{
	struct buf schema = {0};
	provider_buf_schema(&schema, job->schema, SCHEMA_ANTHROPIC);
	buf_puts(b, ",\"outputConfig\":{\"textFormat\":{\"type\":\"json_schema\",\"structure\":"
	            "{\"jsonSchema\":{\"schema\":");
	buf_json_str(b, schema.data, schema.len);
	buf_puts(b, ",\"name\":");
	buf_json_str(b, job->schema_name, strlen(job->schema_name));
	buf_puts(b, "}}}}");
	buf_free(&schema);
}

/* Signs req (its URL and body final) with the provider's AWS credentials. */
static int sign(const struct provider_conf *p, struct http_request *req, const char *content_type,
                char *errstr, size_t errstr_size)
{
	const char *const headers[] = {content_type};
	struct sigv4_request r = {.method = "POST",
	                          .url = req->url.data,
	                          .headers = headers,
	                          .n_headers = 1,
	                          .body = req->body.data,
	                          .body_len = req->body.len,
	                          .region = p->region,
	                          .service = "bedrock",
	                          .time_s = provider_bedrock_now_s()};
	struct sigv4_credentials c = {.access_key_id = p->aws_access_key_id,
	                              .secret_access_key = p->aws_secret_access_key,
	                              .session_token = p->aws_session_token};
	struct sigv4_out out = {0};
	char why[200];
	if (!p->region || !c.access_key_id || !c.secret_access_key) {
		snprintf(errstr, errstr_size,
		         "bedrock: provider %s has no region or AWS credentials to sign with",
		         p->name);
		return -1;
	}
	if (sigv4_sign(&r, &c, &out, why, sizeof why) != 0) {
		snprintf(errstr, errstr_size, "bedrock: cannot sign the request: %s", why);
		return -1;
	}
	for (size_t i = 0; i < out.n; i++)
		http_request_add_header(req, "%s", out.lines[i]);
	sigv4_out_clear(&out);
	return 0;
}

static int bedrock_build_request(const struct provider_conf *p, const struct model_conf *m,
                                 const struct job *job, int64_t max_tokens,
                                 struct http_request *req, char *errstr, size_t errstr_size)
{
	static const char content_type[] = "Content-Type: application/json";
	struct buf *b = &req->body;
	struct buf system = {0}, config = {0};
	struct provider_turn turn, next;
	struct provider_plan plan;
	enum family family = family_of(m);
	size_t pos = 0;
	int rc = -1;

	if (!m->id[0]) {
		snprintf(errstr, errstr_size, "bedrock: %s has an empty model id", m->name);
		goto out;
	}
	if (provider_plan_make("bedrock", m, job, family == FAMILY_ANTHROPIC, &plan, errstr,
	                       errstr_size) != 0)
		goto out;
	/* Nova 2 reasons to an effort; at high it wants no maxTokens,
	 * temperature or topP. */
	bool nova = family == FAMILY_NOVA2 && job->effort != EFFORT_NONE;
	bool unbounded = nova && job->effort == EFFORT_HIGH;
	int64_t thinking = nova ? provider_thinking_budget(m, job) : plan.thinking;
	if (!provider_next_turn(job, &pos, &turn)) {
		snprintf(errstr, errstr_size,
		         "bedrock: the job has no user or assistant message with content");
		goto out;
	}

	buf_printf(&req->url, "%s/model/", p->base_url);
	sigv4_buf_path_segment(&req->url, m->id);
	buf_puts(&req->url, "/converse");
	provider_request_common(p, req, "Authorization");
	http_request_add_header(req, "%s", content_type);

	buf_puts(b, "{\"messages\":[");
	for (bool first = true;; first = false) {
		bool more = provider_next_turn(job, &pos, &next);
		buf_printf(b, "%s{\"role\":\"%s\",\"content\":[", first ? "" : ",",
		           turn.role == ROLE_USER ? "user" : "assistant");
		if (provider_buf_turn_blocks(b, job, &turn, !more, &block_ops, errstr,
		                             errstr_size) != 0)
			goto out;
		buf_puts(b, "]}");
		if (!more)
			break;
		turn = next;
	}
	buf_puts(b, "]");

	provider_buf_system_plan(&system, job, &plan);
	if (system.len) {
		buf_puts(b, ",\"system\":[{\"text\":");
		buf_json_str(b, system.data, system.len);
		buf_puts(b, "}]");
	}

	/* Claude's thinking takes no temperature but 1 and no top_p below
	 * 0.95, Nova's at high none at all: they are left out. */
	bool sampling = !plan.thinking && !unbounded;
	if (!unbounded)
		buf_printf(&config, ",\"maxTokens\":%lld",
		           (long long)(provider_max_tokens(m, max_tokens) + thinking));
	if (job->has_temperature && sampling)
		buf_printf(&config, ",\"temperature\":%.17g",
		           job->temperature > 1 ? 1.0 : job->temperature);
	if (job->has_top_p && sampling)
		buf_printf(&config, ",\"topP\":%.17g", job->top_p);
	provider_buf_stop_array(&config, ",\"stopSequences\":", job->stop);
	buf_printf(b, ",\"inferenceConfig\":{%s}", config.len ? config.data + 1 : "");

	put_tool_config(b, job, &plan);
	if (plan.thinking)
		buf_printf(b,
		           ",\"additionalModelRequestFields\":{\"thinking\":{\"type\":\"enabled\","
		           "\"budget_tokens\":%lld}}",
		           (long long)plan.thinking);
	if (nova)
		buf_printf(b,
		           ",\"additionalModelRequestFields\":{\"reasoningConfig\":{\"type\":"
		           "\"enabled\",\"maxReasoningEffort\":\"%s\"}}",
		           reasoning_effort_name(job->effort));
	if (plan.native)
		put_output_config(b, job);
	buf_puts(b, "}");

	/* A Bedrock API key (api_key_env) went as a bearer token above;
	 * otherwise the request is signed, now that URL and body are final. */
	if (!p->api_key && sign(p, req, content_type, errstr, errstr_size) != 0)
		goto out;
	rc = 0;
out:
	buf_free(&system);
	buf_free(&config);
	return rc;
}

/* ---------------------------------------------------------------- response */

static enum finish_reason map_stop_reason(const char *r)
{
	static const struct {
		const char *name;
		enum finish_reason f;
	} map[] = {
	        {"end_turn", FINISH_STOP},
	        {"stop_sequence", FINISH_STOP},
	        {"max_tokens", FINISH_LENGTH},
	        {"model_context_window_exceeded", FINISH_LENGTH},
	        {"tool_use", FINISH_TOOL_CALLS},
	        {"guardrail_intervened", FINISH_CONTENT_FILTER},
	        {"content_filtered", FINISH_CONTENT_FILTER},
	};
	for (size_t i = 0; r && i < sizeof map / sizeof map[0]; i++)
		if (strcmp(r, map[i].name) == 0)
			return map[i].f;
	return FINISH_OTHER;
}

/* The error type of an AWS error body: __type or code, without a
 * namespace ("com.amazon.coral.service#") or a ":http://..." suffix, in
 * out; NULL when the body names none. */
static const char *error_type(struct jdoc *d, const struct jval *root, char *out, size_t size)
{
	static const char *const keys[] = {"__type", "code", "Code"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const char *t = jdoc_str(d, jv_get(root, keys[i]));
		if (!t || !*t)
			continue;
		const char *hash = strrchr(t, '#');
		if (hash)
			t = hash + 1;
		snprintf(out, size, "%.*s", (int)strcspn(t, ":"), t);
		return out;
	}
	return NULL;
}

static bool is_one_of(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

#define IS_ONE_OF(s, list) is_one_of((s), (list), sizeof(list) / sizeof((list)[0]))

static bool has_any(const char *text, const char *const *marks, size_t n)
{
	for (size_t i = 0; text && i < n; i++)
		if (strcasestr(text, marks[i]))
			return true;
	return false;
}

#define HAS_ANY(text, marks) has_any((text), (marks), sizeof(marks) / sizeof((marks)[0]))

/* The error types that are throttles, whatever their status: the
 * provider is parked as for a 429 (completion.throttled). */
static const char *const throttle_types[] = {
        "ThrottlingException", "ThrottledException",   "TooManyRequestsException",
        "Throttling",          "RequestLimitExceeded", "ServiceQuotaExceededException",
};
/* The other error types worth another try: the service's and the model's
 * own failures. */
static const char *const retryable_types[] = {
        "ModelNotReadyException", "ServiceUnavailableException",
        "ServiceUnavailable",     "InternalServerException",
        "InternalFailure",        "ModelTimeoutException",
        "ModelErrorException",
};
/* The credentials' or the signature's fault. */
static const char *const auth_types[] = {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
        "ExpiredToken",
        "InvalidClientTokenId",
        "MissingAuthenticationTokenException",
        "NotAuthorized",
};
static const char *const throttle_marks[] = {
        "too many requests", "rate exceeded", "throttl", "please wait before trying again",
        "service quota",
};
/* Bedrock's own words for an input too long, besides the shared phrases
 * (Anthropic's, which Claude on Bedrock quotes). */
static const char *const overflow_marks[] = {
        "too long",
        "input length",
        "tokens exceed",
};

static bool is_overflow(const char *msg)
{
	return provider_text_is_context_overflow(msg) || HAS_ANY(msg, overflow_marks);
}

static enum response_class bedrock_error(long status, enum response_class cls, struct jdoc *d,
                                         struct completion *out)
{
	const struct jval *root = jdoc_root(d);
	char word[80];
	const char *type = error_type(d, root, word, sizeof word);
	const char *msg = jdoc_str(d, jv_get(root, "message"));
	if (!msg)
		msg = jdoc_str(d, jv_get(root, "Message"));

	if (IS_ONE_OF(type, throttle_types)) {
		cls = RESPONSE_RETRYABLE;
		out->throttled = true;
	} else if (IS_ONE_OF(type, retryable_types))
		cls = RESPONSE_RETRYABLE;
	else if (IS_ONE_OF(type, auth_types))
		cls = RESPONSE_AUTH;
	else if (type && strcmp(type, "ValidationException") == 0)
		cls = is_overflow(msg) ? RESPONSE_CONTEXT_OVERFLOW : RESPONSE_REJECTED;
	else if (!type && status == 424)
		cls = RESPONSE_RETRYABLE; /* ModelErrorException */
	else if (!type && cls == RESPONSE_REJECTED && HAS_ANY(msg, throttle_marks)) {
		cls = RESPONSE_RETRYABLE;
		out->throttled = true;
	} else if (!type && cls == RESPONSE_REJECTED && is_overflow(msg))
		cls = RESPONSE_CONTEXT_OVERFLOW;
	/* Any other type (ResourceNotFoundException, ...): the status says. */

	/* A signature error quotes the canonical request, the session token
	 * among its header values: nothing from there on is kept. */
	size_t keep = 0;
	if (msg) {
		const char *quote = strcasestr(msg, "The Canonical String");
		keep = quote ? (size_t)(quote - msg) : strlen(msg);
		while (keep > 0 && strchr(" \n\t", msg[keep - 1]))
			keep--;
	}
	provider_set_error_of(out, status, root != NULL, type, msg, keep);
	return cls;
}

/* A content block: {text} or {toolUse: {toolUseId, name, input}};
 * reasoningContent, citations, images, ... are neither. */
static void read_block(const struct jval *block, struct provider_answer_block *out)
{
	const struct jval *use = jv_get(block, "toolUse");
	out->text = jv_get(block, "text");
	if (!use)
		return;
	out->tool_use = true;
	out->id = jv_get(use, "toolUseId");
	out->name = jv_get(use, "name");
	out->input = jv_get(use, "input");
}

static const struct provider_block_format answer_format = {
        .usage = {"usage", "inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens",
                  "outputTokens"},
        .error = bedrock_error,
        .content = {"output", "message", "content", NULL},
        .stop = "stopReason",
        .read = read_block,
        .map_stop = map_stop_reason,
};

static enum response_class bedrock_parse_response(const struct model_conf *m, long status,
                                                  const char *body, size_t len,
                                                  struct completion *out)
{
	(void)m;
	return provider_parse_blocks(&answer_format, status, body, len, out);
}

const struct provider provider_bedrock = {
        .type = "bedrock",
        .url_parts = 0,
        .build_request = bedrock_build_request,
        .parse_response = bedrock_parse_response,
};
