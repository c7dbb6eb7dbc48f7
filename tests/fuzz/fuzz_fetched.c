/* fuzz_fetched: the bytes a server sends for a URL part (an image or a PDF
 * the worker fetches for a wire format that cannot take URLs) through
 * job_part_set_fetched, and a PDF's page count.
 *
 * An input is the answer's Content-Type (up to the first newline) and its
 * body (the rest). Checked beyond the sanitizers: bytes taken are kept as
 * base64 that decodes back to them, a document's pages are counted from
 * them, and a refusal names the part in valid UTF-8. */
#include "fuzz.h"
#include "job.h"

#include <string.h>

static const struct config *cfg;

static const char job_text[] = "{\"id\":\"f\",\"messages\":[{\"role\":\"user\",\"content\":["
                               "{\"type\":\"text\",\"text\":\"Compare these.\"},"
                               "{\"type\":\"image\",\"url\":\"https://files.test/a\"},"
                               "{\"type\":\"document\",\"url\":\"https://files.test/b\"}]}]}";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	cfg = fuzz_load_config("tests/fuzz/fuzz_job.cfg");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size < 128 ? size : 128);
	char type[128];
	if (!nl)
		return 0;
	memcpy(type, data, (size_t)(nl - data));
	type[nl - data] = '\0';
	const unsigned char *bytes = nl + 1;
	size_t len = size - (size_t)(nl + 1 - data);

	int64_t pages = job_count_pdf_pages(bytes, len);
	FUZZ_CHECK(pages >= 0 && (size_t)pages <= len / 5);

	struct job job;
	char err[512];
	FUZZ_CHECK(job_decode(cfg, job_text, sizeof job_text - 1, &job, err, sizeof err) == 0);
	FUZZ_CHECK(job.n_parts == 3);
	for (size_t i = 0; i < job.n_parts; i++) {
		struct job_part *part = &job.parts[i];
		if (!part->url)
			continue;
		int64_t before = job.pdf_pages;
		if (job_part_set_fetched(&job, part, bytes, len, *type ? type : NULL, err,
		                         sizeof err) != 0) {
			FUZZ_CHECK(part->fetched == NULL);
			FUZZ_CHECK(strncmp(err, "messages[0].content[", 20) == 0);
			FUZZ_CHECK(fuzz_utf8_valid(err, strlen(err)));
			continue;
		}
		FUZZ_CHECK(part->media_type && part->decoded_len == len);
		FUZZ_CHECK(part->fetched && strlen(part->fetched) == part->fetched_len);
		unsigned char *back = malloc(part->fetched_len / 4 * 3 + 1);
		FUZZ_CHECK(job_base64_decode(part->fetched, part->fetched_len, back) ==
		           (int64_t)len);
		FUZZ_CHECK(len == 0 || memcmp(back, bytes, len) == 0);
		free(back);
		if (part->type == PART_DOCUMENT) {
			FUZZ_CHECK(part->pdf_pages == pages);
			FUZZ_CHECK(job.pdf_pages == before + pages);
		}
	}
	for (size_t i = 0; i < cfg->n_models; i++)
		FUZZ_CHECK(job_media_tokens(&job, &cfg->models[i]) >= 0);
	job_clear(&job);
	return 0;
}
