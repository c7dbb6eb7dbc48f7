/* fake_anthropic: Anthropic Messages for bin/fake_provider: the request
 * read and checked as the API checks it, and the answer in its shape.
 *
 * What is checked: anthropic-version; max_tokens; roles; non-blank text;
 * content blocks by type: image and document sources (base64 with a media
 * type the API takes, data that is base64 and is what the media type says,
 * url, file, a document's text or content); tool_use only from the
 * assistant, tool_result only from the user, first in the turn right after,
 * one for each tool_use id; tools (name, input_schema of type object,
 * unique names); tool_choice (auto, any, tool naming a tool, none);
 * thinking (budget_tokens >= 1024 and < max_tokens; then no temperature but
 * 1, no top_p below 0.95, no top_k, no forced tool, and a conversation
 * continued after a tool result must hold the thinking block before its
 * tool_use); structured outputs (output_config.format, or output_format
 * with the structured-outputs beta header) whose schema closes every object
 * and sets no numeric, length or item-count bounds. */
#include "fake.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ request */

static bool an_image_type(const char *t)
{
	return t != NULL && (strcmp(t, "image/jpeg") == 0 || strcmp(t, "image/png") == 0 ||
	                     strcmp(t, "image/gif") == 0 || strcmp(t, "image/webp") == 0);
}

/* An image or document block's source; at is "messages.I.content.K.KIND". */
static void an_source(struct call *c, json_t *src, bool image, const char *at)
{
	const char *type = json_string_value(json_object_get(src, "type"));
	const char *media = json_string_value(json_object_get(src, "media_type"));
	json_t *data = json_object_get(src, "data");
	const char *sniffed;
	unsigned char *bytes;
	size_t n;

	if (!json_is_object(src)) {
		fake_fail(c, NULL, NULL, "%s.source: Field required", at);
		return;
	}
	if (type != NULL && strcmp(type, "url") == 0) {
		if (!json_is_string(json_object_get(src, "url")))
			fake_fail(c, NULL, NULL, "%s.source.url.url: Field required", at);
		else if (image)
			c->images++; /* a PDF's pages are not known here */
		return;
	}
	if (type != NULL && strcmp(type, "file") == 0) {
		if (!json_is_string(json_object_get(src, "file_id")))
			fake_fail(c, NULL, NULL, "%s.source.file.file_id: Field required", at);
		return;
	}
	if (!image && type != NULL && strcmp(type, "text") == 0) {
		if (!fake_is(json_object_get(src, "media_type"), "text/plain") ||
		    !json_is_string(data))
			fake_fail(c, NULL, NULL,
			          "%s.source.text.media_type: Input should be 'text/plain'", at);
		else
			fake_text(c, json_string_value(data));
		return;
	}
	if (!image && type != NULL && strcmp(type, "content") == 0) {
		json_t *blocks = json_object_get(src, "content"), *b;
		size_t k;

		if (json_is_string(blocks))
			fake_text(c, json_string_value(blocks));
		json_array_foreach (blocks, k, b) {
			if (json_is_string(json_object_get(b, "text")))
				fake_text(c, json_string_value(json_object_get(b, "text")));
		}
		return;
	}
	if (type == NULL || strcmp(type, "base64") != 0) {
		fake_fail(c, NULL, NULL,
		          "%s.source: Input tag '%.40s' found using 'type' does not match any of "
		          "the expected tags: %s",
		          at, type != NULL ? type : "None",
		          image ? "'base64', 'url', 'file'"
		                : "'base64', 'content', 'text', 'url', 'file'");
		return;
	}
	if (image && !an_image_type(media)) {
		fake_fail(c, NULL, NULL,
		          "%s.source.base64.media_type: Input should be 'image/jpeg', "
		          "'image/png', 'image/gif' or 'image/webp'",
		          at);
		return;
	}
	if (!image && (media == NULL || strcmp(media, "application/pdf") != 0)) {
		fake_fail(c, NULL, NULL,
		          "%s.source.base64.media_type: Input should be 'application/pdf'", at);
		return;
	}
	if (!json_is_string(data)) {
		fake_fail(c, NULL, NULL, "%s.source.base64.data: Field required", at);
		return;
	}
	bytes = fake_base64_decode(json_string_value(data), json_string_length(data), false, &n);
	sniffed = bytes != NULL ? fake_media_sniff(bytes, n) : NULL;
	if (bytes == NULL)
		fake_fail(c, NULL, NULL, "%s.source.base64.data: invalid base64 data", at);
	else if (image && sniffed != NULL && strncmp(sniffed, "image/", 6) == 0 &&
	         strcmp(sniffed, media) != 0)
		fake_fail(c, NULL, NULL,
		          "%s.source.base64.data: Image does not match the provided media type %s",
		          at, media);
	else if (image && (sniffed == NULL || strcmp(sniffed, media) != 0))
		fake_fail(c, NULL, NULL, "%s.source.base64.data: Could not process image", at);
	else if (!image && (sniffed == NULL || strcmp(sniffed, "application/pdf") != 0))
		fake_fail(c, NULL, NULL, "%s.source.base64.data: The PDF specified was not valid.",
		          at);
	else
		fake_count_media(c, media, bytes, n);
	free(bytes);
}

/* A tool_result's content: a string or text and image blocks. */
static void an_tool_result_content(struct call *c, json_t *content, const char *at)
{
	char sub[128];
	json_t *b;
	size_t k;

	if (content == NULL || json_is_string(content)) {
		if (content != NULL)
			fake_text(c, json_string_value(content));
		return;
	}
	json_array_foreach (content, k, b) {
		const char *t = json_string_value(json_object_get(b, "type"));

		snprintf(sub, sizeof(sub), "%s.content.%zu", at, k);
		if (t != NULL && strcmp(t, "text") == 0 &&
		    json_is_string(json_object_get(b, "text"))) {
			fake_text(c, json_string_value(json_object_get(b, "text")));
		} else if (t != NULL && (strcmp(t, "image") == 0 || strcmp(t, "document") == 0)) {
			snprintf(sub, sizeof(sub), "%s.content.%zu.%s", at, k, t);
			an_source(c, json_object_get(b, "source"), strcmp(t, "image") == 0, sub);
		} else {
			fake_fail(c, NULL, NULL,
			          "%s: Input tag '%.40s' found using 'type' does not match any of "
			          "the expected tags: 'text', 'image', 'document', "
			          "'search_result'",
			          sub, t != NULL ? t : "None");
		}
	}
}

/* One message of the conversation: its blocks checked and counted, its
 * tool_use ids put in *made, its tool_result ids taken from *open (the
 * previous turn's). */
static void an_blocks(struct call *c, json_t *content, bool user, size_t i, struct fake_ids *open,
                      struct fake_ids *made)
{
	bool other_seen = false;
	char at[96];
	json_t *b;
	size_t k;

	json_array_foreach (content, k, b) {
		const char *t = json_string_value(json_object_get(b, "type"));
		json_t *text = json_object_get(b, "text");

		snprintf(at, sizeof(at), "messages.%zu.content.%zu", i, k);
		if (!json_is_object(b) || t == NULL) {
			fake_fail(c, NULL, NULL, "%s: Input should be a valid dictionary or object",
			          at);
			return;
		}
		if (strcmp(t, "tool_result") == 0 && user) {
			const char *id = json_string_value(json_object_get(b, "tool_use_id"));

			if (id == NULL) {
				fake_fail(c, NULL, NULL,
				          "%s.tool_result.tool_use_id: Field required", at);
				return;
			}
			if (other_seen || !fake_ids_take(open, id)) {
				fake_fail(c, NULL, NULL,
				          "%s: unexpected `tool_use_id` found in `tool_result` "
				          "blocks: %s. Each `tool_result` block must have a "
				          "corresponding `tool_use` block in the previous "
				          "message.",
				          at, id);
				return;
			}
			an_tool_result_content(c, json_object_get(b, "content"), at);
			c->after_tool_result = true;
			continue;
		}
		other_seen = true;
		if (strcmp(t, "text") == 0) {
			if (!json_is_string(text)) {
				fake_fail(c, NULL, NULL, "%s.text.text: Field required", at);
				return;
			}
			if (fake_blank(json_string_value(text))) {
				fake_fail(c, NULL, NULL,
				          "messages: text content blocks must contain "
				          "non-whitespace text");
				return;
			}
			fake_text(c, json_string_value(text));
		} else if (strcmp(t, "image") == 0 || strcmp(t, "document") == 0) {
			snprintf(at, sizeof(at), "messages.%zu.content.%zu.%s", i, k, t);
			an_source(c, json_object_get(b, "source"), strcmp(t, "image") == 0, at);
		} else if (strcmp(t, "tool_use") == 0 && !user) {
			const char *id = json_string_value(json_object_get(b, "id"));

			if (id == NULL || !json_is_string(json_object_get(b, "name"))) {
				fake_fail(c, NULL, NULL, "%s.tool_use.%s: Field required", at,
				          id == NULL ? "id" : "name");
				return;
			}
			if (!json_is_object(json_object_get(b, "input"))) {
				fake_fail(c, NULL, NULL,
				          "%s.tool_use.input: Input should be a valid dictionary",
				          at);
				return;
			}
			fake_ids_add(made, id);
		} else if ((strcmp(t, "thinking") == 0 || strcmp(t, "redacted_thinking") == 0) &&
		           !user) {
			/* an earlier turn's thinking, handed back */
		} else {
			fake_fail(c, NULL, NULL,
			          "%s: Input tag '%.40s' found using 'type' does not match any of "
			          "the expected tags: %s",
			          at, t,
			          user ? "'text', 'image', 'document', 'tool_result'"
			               : "'text', 'tool_use', 'thinking', 'redacted_thinking'");
			return;
		}
	}
}

static void an_messages(struct call *c, json_t *msgs)
{
	struct fake_ids open = {.n = 0}, made;
	char list[512];
	json_t *m;
	size_t i;

	json_array_foreach (msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *content = json_object_get(m, "content");
		bool user;

		if (role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
			fake_fail(c, NULL, NULL,
			          "messages: Unexpected role. The Messages API accepts a "
			          "top-level `system` parameter, not \"system\" as an input "
			          "message role.");
			return;
		}
		user = strcmp(role, "user") == 0;
		made.n = 0;
		c->after_tool_result = false;
		if (json_is_string(content)) {
			if (fake_blank(json_string_value(content)) &&
			    !(i + 1 == json_array_size(msgs) && !user)) {
				fake_fail(c, NULL, NULL,
				          "messages.%zu: all messages must have non-empty content "
				          "except for the optional final assistant message",
				          i);
				return;
			}
			fake_text(c, json_string_value(content));
		} else if (json_is_array(content)) {
			an_blocks(c, content, user, i, &open, &made);
		} else {
			fake_fail(c, NULL, NULL,
			          "messages.%zu.content: Input should be a valid string or list",
			          i);
			return;
		}
		if (c->invalid != NULL)
			return;
		if (open.n > 0) {
			fake_fail(c, NULL, NULL,
			          "messages.%zu: `tool_use` ids were found without `tool_result` "
			          "blocks immediately after: %s. Each `tool_use` block must have "
			          "a corresponding `tool_result` block in the next message.",
			          i - 1, fake_ids_list(&open, list, sizeof(list)));
			return;
		}
		open = made;
		c->messages++;
	}
	if (open.n > 0)
		fake_fail(c, NULL, NULL,
		          "messages.%zu: `tool_use` ids were found without `tool_result` blocks "
		          "immediately after: %s. Each `tool_use` block must have a corresponding "
		          "`tool_result` block in the next message.",
		          json_array_size(msgs) - 1, fake_ids_list(&open, list, sizeof(list)));
}

/* The custom tool named name (NULL: the first), or NULL. Borrowed. */
static json_t *an_tool(json_t *tools, const char *name)
{
	json_t *t;
	size_t k;

	json_array_foreach (tools, k, t) {
		const char *n = json_string_value(json_object_get(t, "name"));
		json_t *type = json_object_get(t, "type");

		if ((type == NULL || fake_is(type, "custom")) && n != NULL &&
		    (name == NULL || strcmp(n, name) == 0))
			return t;
	}
	return NULL;
}

static void an_tools(struct call *c, json_t *tools)
{
	char where[96];
	json_t *t;
	size_t k;

	if (tools != NULL && !json_is_array(tools)) {
		fake_fail(c, NULL, NULL, "tools: Input should be a valid list");
		return;
	}
	json_array_foreach (tools, k, t) {
		const char *name = json_string_value(json_object_get(t, "name"));
		json_t *type = json_object_get(t, "type");
		json_t *schema = json_object_get(t, "input_schema");

		if (type != NULL && !fake_is(type, "custom"))
			continue; /* a server tool (web search, ...) */
		if (!fake_name_ok(name, 128)) {
			fake_fail(c, NULL, NULL,
			          "tools.%zu.custom.name: String should match pattern "
			          "'^[a-zA-Z0-9_-]{1,128}$'",
			          k);
			return;
		}
		if (an_tool(tools, name) != t) {
			fake_fail(c, NULL, NULL, "tools: Tool names must be unique.");
			return;
		}
		if (!json_is_object(schema)) {
			fake_fail(c, NULL, NULL, "tools.%zu.custom.input_schema: Field required",
			          k);
			return;
		}
		if (!fake_is(json_object_get(schema, "type"), "object")) {
			fake_fail(c, NULL, NULL,
			          "tools.%zu.custom.input_schema.type: Input should be 'object'",
			          k);
			return;
		}
		snprintf(where, sizeof(where), "tools.%zu.custom.input_schema", k);
		if (json_is_true(json_object_get(t, "strict")) &&
		    !fake_schema_ok(c, schema, RULES_ANTHROPIC, where, NULL, NULL))
			return;
	}
}

static void an_tool_choice(struct call *c, json_t *tools, json_t *choice)
{
	json_t *type = json_object_get(choice, "type"), *t;
	const char *named = json_string_value(json_object_get(choice, "name"));
	bool forced = fake_is(type, "any") || fake_is(type, "tool");

	if (choice != NULL && !fake_is(type, "auto") && !fake_is(type, "any") &&
	    !fake_is(type, "tool") && !fake_is(type, "none")) {
		fake_fail(c, NULL, NULL,
		          "tool_choice: Input tag '%.40s' found using 'type' does not match any "
		          "of the expected tags: 'auto', 'any', 'tool', 'none'",
		          json_string_value(type) ? json_string_value(type) : "None");
		return;
	}
	if (forced && an_tool(tools, NULL) == NULL) {
		fake_fail(c, NULL, NULL,
		          "tool_choice: tool_choice may only be specified while providing tools");
		return;
	}
	if (fake_is(type, "tool") && (named == NULL || an_tool(tools, named) == NULL)) {
		fake_fail(c, NULL, NULL,
		          "tool_choice.tool.name: Tool '%.64s' not found in the provided tools",
		          named != NULL ? named : "");
		return;
	}
	if (fake_is(type, "none"))
		return;
	t = an_tool(tools, fake_is(type, "tool") ? named : NULL);
	if (t != NULL && (forced || !c->after_tool_result)) {
		c->tool = json_string_value(json_object_get(t, "name"));
		c->tool_params = json_object_get(t, "input_schema");
	}
}

#define AN_THINKING_DOC "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"

static void an_thinking(struct call *c, json_t *msgs)
{
	json_t *th = json_object_get(c->body, "thinking");
	json_t *type = json_object_get(th, "type"), *budget = json_object_get(th, "budget_tokens");
	json_t *temp = json_object_get(c->body, "temperature");
	json_t *top_p = json_object_get(c->body, "top_p");
	json_t *choice = json_object_get(c->body, "tool_choice");
	json_t *prev, *first;

	if (th == NULL || fake_is(type, "disabled"))
		return;
	if (fake_is(type, "enabled")) {
		if (!json_is_integer(budget)) {
			fake_fail(c, NULL, NULL, "thinking.enabled.budget_tokens: Field required");
			return;
		}
		if (json_integer_value(budget) < 1024) {
			fake_fail(c, NULL, NULL,
			          "thinking.enabled.budget_tokens: Input should be greater than "
			          "or equal to 1024");
			return;
		}
		if (json_integer_value(budget) >= c->max_tokens) {
			fake_fail(c, NULL, NULL,
			          "`max_tokens` must be greater than `thinking.budget_tokens`. "
			          "Please consult our documentation at " AN_THINKING_DOC
			          "#max-tokens-and-context-window-size");
			return;
		}
		c->thinking_cap = json_integer_value(budget);
	} else if (fake_is(type, "adaptive")) {
		c->thinking_cap = -1;
	} else {
		fake_fail(
		        c, NULL, NULL,
		        "thinking: Input tag '%.40s' found using 'type' does not match any of the "
		        "expected tags: 'adaptive', 'disabled', 'enabled'",
		        json_string_value(type) ? json_string_value(type) : "None");
		return;
	}
	c->thinking = true;
	if (json_is_number(temp) && json_number_value(temp) != 1.0) {
		fake_fail(c, NULL, NULL,
		          "`temperature` may only be set to 1 when thinking is enabled. Please "
		          "consult our documentation at " AN_THINKING_DOC "#feature-compatibility");
		return;
	}
	if (json_is_number(top_p) && json_number_value(top_p) < 0.95) {
		fake_fail(c, NULL, NULL,
		          "`top_p` must be greater than or equal to 0.95 or unset when thinking "
		          "is enabled. Please consult our documentation at " AN_THINKING_DOC
		          "#feature-compatibility");
		return;
	}
	if (json_object_get(c->body, "top_k") != NULL) {
		fake_fail(c, NULL, NULL,
		          "`top_k` must be unset when thinking is enabled. Please consult our "
		          "documentation at " AN_THINKING_DOC "#feature-compatibility");
		return;
	}
	if (fake_is(json_object_get(choice, "type"), "any") ||
	    fake_is(json_object_get(choice, "type"), "tool")) {
		fake_fail(c, NULL, NULL,
		          "Thinking may not be enabled when tool_choice forces tool use.");
		return;
	}
	/* Going on after a tool result: the turn that called the tool must
	 * start with its thinking. */
	prev = json_array_size(msgs) >= 2 ? json_array_get(msgs, json_array_size(msgs) - 2) : NULL;
	first = json_array_get(json_object_get(prev, "content"), 0);
	if (c->after_tool_result && prev != NULL &&
	    !fake_is(json_object_get(first, "type"), "thinking") &&
	    !fake_is(json_object_get(first, "type"), "redacted_thinking")) {
		const char *found = json_string_value(json_object_get(first, "type"));

		fake_fail(
		        c, NULL, NULL,
		        "messages.%zu.content.0.type: Expected `thinking` or `redacted_thinking`, "
		        "but found `%s`. When `thinking` is enabled, a final `assistant` message "
		        "must start with a thinking block (preceeding the lastmost set of "
		        "`tool_use` and `tool_result` blocks). We recommend you include thinking "
		        "blocks from previous turns. To avoid this requirement, disable "
		        "`thinking`. Please consult our documentation at " AN_THINKING_DOC,
		        json_array_size(msgs) - 2, found != NULL ? found : "text");
	}
}

static void an_output_format(struct call *c)
{
	json_t *beta = json_object_get(c->body, "output_format");
	json_t *fmt = json_object_get(json_object_get(c->body, "output_config"), "format");
	const char *where = "output_config.format";
	json_t *schema;
	char at[64];

	if (beta != NULL) {
		if (c->anthropic_beta == NULL ||
		    strstr(c->anthropic_beta, "structured-outputs") == NULL) {
			fake_fail(c, NULL, NULL, "output_format: Extra inputs are not permitted");
			return;
		}
		fmt = beta;
		where = "output_format";
	}
	if (fmt == NULL)
		return;
	schema = json_object_get(fmt, "schema");
	if (!fake_is(json_object_get(fmt, "type"), "json_schema")) {
		fake_fail(c, NULL, NULL,
		          "%s: Input tag '%.40s' found using 'type' does not match any of the "
		          "expected tags: 'json_schema'",
		          where,
		          json_is_string(json_object_get(fmt, "type"))
		                  ? json_string_value(json_object_get(fmt, "type"))
		                  : "None");
		return;
	}
	if (!json_is_object(schema)) {
		fake_fail(c, NULL, NULL, "%s.schema: Field required", where);
		return;
	}
	snprintf(at, sizeof(at), "%s.schema", where);
	if (!fake_schema_ok(c, schema, RULES_ANTHROPIC, at, NULL, NULL))
		return;
	c->schema = schema;
}

void fake_anthropic_parse(struct call *c)
{
	json_t *model = json_object_get(c->body, "model");
	json_t *msgs = json_object_get(c->body, "messages");
	json_t *mt = json_object_get(c->body, "max_tokens");
	json_t *system = json_object_get(c->body, "system");
	json_t *tools = json_object_get(c->body, "tools");
	const char *version = c->anthropic_version;
	json_t *b;
	size_t i;

	if (json_is_string(model))
		snprintf(c->model, sizeof(c->model), "%s", json_string_value(model));
	if (version == NULL) {
		fake_fail(c, NULL, NULL, "anthropic-version: header is required");
		return;
	}
	if (strcmp(version, "2023-06-01") != 0 && strcmp(version, "2023-01-01") != 0) {
		fake_fail(c, NULL, NULL, "anthropic-version: invalid version");
		return;
	}
	if (!json_is_string(model)) {
		fake_fail(c, NULL, NULL, "model: Field required");
		return;
	}
	if (!json_is_integer(mt)) {
		fake_fail(c, NULL, NULL, "max_tokens: Field required");
		return;
	}
	if (json_integer_value(mt) < 1) {
		fake_fail(c, NULL, NULL, "max_tokens: Input should be greater than or equal to 1");
		return;
	}
	c->max_tokens = json_integer_value(mt);
	if (json_is_string(system)) {
		fake_text(c, json_string_value(system));
		c->messages++;
	} else if (system != NULL) {
		if (!json_is_array(system)) {
			fake_fail(c, NULL, NULL,
			          "system: Input should be a valid string or list of text blocks");
			return;
		}
		json_array_foreach (system, i, b) {
			if (!fake_is(json_object_get(b, "type"), "text") ||
			    !json_is_string(json_object_get(b, "text"))) {
				fake_fail(c, NULL, NULL,
				          "system.%zu: Input should be a valid text block", i);
				return;
			}
			fake_text(c, json_string_value(json_object_get(b, "text")));
		}
		c->messages++;
	}
	if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
		fake_fail(c, NULL, NULL, "messages: Field required");
		return;
	}
	an_messages(c, msgs);
	an_tools(c, tools);
	an_tool_choice(c, tools, json_object_get(c->body, "tool_choice"));
	an_thinking(c, msgs);
	an_output_format(c);
}

/* ------------------------------------------------------------- answer */

json_t *fake_anthropic_answer(const struct call *c, const struct answer *a)
{
	const char *stop = a->truncated                  ? "max_tokens"
	                   : a->kind == ANSWER_TOOL_CALL ? "tool_use"
	                   : a->kind == ANSWER_REFUSAL   ? "refusal"
	                                                 : "end_turn";
	json_t *content = json_array();
	char id[64];

	if (a->reasoning > 0) {
		snprintf(id, sizeof(id), "fakesig%016" PRIx64, a->seq);
		json_array_append_new(content,
		                      json_pack("{s:s, s:s, s:s}", "type", "thinking", "thinking",
		                                FAKE_THINKING_TEXT, "signature", id));
	}
	if (a->kind == ANSWER_TOOL_CALL) {
		snprintf(id, sizeof(id), "toolu_fake%016" PRIx64, a->seq);
		json_array_append_new(content,
		                      json_pack("{s:s, s:s, s:s, s:O}", "type", "tool_use", "id",
		                                id, "name", c->tool, "input", a->args));
	} else {
		json_array_append_new(content,
		                      json_pack("{s:s, s:s}", "type", "text", "text", a->text));
	}
	snprintf(id, sizeof(id), "msg_fake%016" PRIx64, a->seq);
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:n, s:{s:I, s:I, s:I, s:I, s:s}}", "id",
	                 id, "type", "message", "role", "assistant", "model", c->model, "content",
	                 content, "stop_reason", stop, "stop_sequence", "usage", "input_tokens",
	                 (json_int_t)(a->in - a->cached - a->cache_write), "output_tokens",
	                 (json_int_t)a->out, "cache_creation_input_tokens",
	                 (json_int_t)a->cache_write, "cache_read_input_tokens",
	                 (json_int_t)a->cached, "service_tier", "standard");
}
