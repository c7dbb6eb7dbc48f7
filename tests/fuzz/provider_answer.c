/* provider_answer: see provider_answer.h. */
#include "provider_answer.h"

#include "complexity.h"
#include "fuzz.h"

#include <string.h>

/* Prices of the same order as real ones: the cost must stay defined for any
 * usage a body reports. */
static const struct model_conf model = {
        .name = "m",
        .id = "m",
        .price = {.input_nusd_per_mtok = 3000000000,
                  .cached_input_nusd_per_mtok = 300000000,
                  .cache_write_nusd_per_mtok = 3750000000,
                  .output_nusd_per_mtok = 15000000000},
        .context_tokens = 200000,
        .default_max_tokens = 1024,
};

int fuzz_provider_answer(const struct provider *p, const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	long status = (data[0] % 10) * 100 + (data[1] % 10) * 10 + data[2] % 10;
	const char *body = (const char *)data + 3; /* ends where libFuzzer's buffer ends */
	size_t len = size - 3;
	struct completion c = {0};

	enum response_class cls = p->parse_response(&model, status, body, len, &c);

	FUZZ_CHECK(cls >= RESPONSE_OK && cls <= RESPONSE_INVALID);
	bool ok_status = status >= 200 && status < 300;
	/* Only a 2xx can be a completion or an invalid one; a failure's class
	 * never turns into success. */
	FUZZ_CHECK(ok_status == (cls == RESPONSE_OK || cls == RESPONSE_INVALID));
	if (cls == RESPONSE_OK) {
		FUZZ_CHECK((unsigned)c.finish_reason <= FINISH_REFUSAL);
		if (c.content) {
			FUZZ_CHECK(fuzz_utf8_valid(c.content, strlen(c.content)));
			/* What the engine does with a classifier's answer. */
			double score;
			if (complexity_parse_reply(c.content, strlen(c.content), &score) == 0)
				FUZZ_CHECK(score >= 0 && score <= 1);
		}
		if (c.refusal)
			FUZZ_CHECK(fuzz_utf8_valid(c.refusal, strlen(c.refusal)));
		for (size_t i = 0; i < c.n_tool_calls; i++) {
			const struct completion_tool_call *t = &c.tool_calls[i];
			FUZZ_CHECK(t->id && fuzz_utf8_valid(t->id, strlen(t->id)));
			FUZZ_CHECK(t->name && fuzz_utf8_valid(t->name, strlen(t->name)));
			/* The arguments go into the result as a JSON object. */
			json_t *args = json_loads(t->arguments, 0, NULL);
			FUZZ_CHECK(json_is_object(args));
			json_decref(args);
		}
	} else {
		FUZZ_CHECK(c.content == NULL);
		FUZZ_CHECK(c.error_message != NULL);
		size_t n = strlen(c.error_message);
		FUZZ_CHECK(n <= PROVIDER_ERROR_MAX);
		FUZZ_CHECK(fuzz_utf8_valid(c.error_message, n));
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK((unsigned char)c.error_message[i] >= 0x20 &&
			           c.error_message[i] != 0x7F);
		FUZZ_CHECK(!fuzz_has_key(c.error_message));
	}
	if (c.has_usage) {
		const struct usage *u = &c.usage;
		FUZZ_CHECK(u->input_tokens >= 0 && u->output_tokens >= 0);
		FUZZ_CHECK(u->cached_input_tokens >= 0 && u->cache_write_tokens >= 0);
		FUZZ_CHECK(u->cached_input_tokens + u->cache_write_tokens <= u->input_tokens);
		FUZZ_CHECK(u->reasoning_tokens >= 0 && u->reasoning_tokens <= u->output_tokens);
		FUZZ_CHECK(money_cost_nusd(&model.price, u) >= 0);
	}
	completion_clear(&c);
	return 0;
}
