/* fuzz: the helpers of fuzz.h, linked into every target. */
#include "fuzz.h"

#include "buf.h"
#include "config.h"
#include "log.h"

#include <string.h>

bool fuzz_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		size_t n = utf8_seq_len(p, end);
		if (n == 0)
			return false;
		p += n;
	}
	return true;
}

static bool is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '*';
}

bool fuzz_has_key(const char *text)
{
	static const char *const prefixes[] = {"sk-", "AIza"};
	for (const char *s = text; *s; s++) {
		if (s > text && is_key_char(s[-1]))
			continue;
		for (size_t i = 0; i < 2; i++) {
			size_t pl = strlen(prefixes[i]), n = pl;
			if (strncmp(s, prefixes[i], pl) != 0)
				continue;
			while (is_key_char(s[n]))
				n++;
			if (n >= pl + 8)
				return true;
		}
	}
	return false;
}

const struct config *fuzz_load_config(const char *path)
{
	char err[512];
	log_set_level(LOG_OFF);
	struct config *cfg = config_load(path, 0, err, sizeof err);
	if (!cfg) {
		fprintf(stderr, "fuzz: cannot load %s: %s\n", path, err);
		exit(1);
	}
	return cfg;
}
