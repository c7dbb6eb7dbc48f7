/* fake_media: base64, the media types the providers take, PDF pages, and
 * the small files of GET /_files/ that tests hand out as URLs. Written
 * apart from the worker's own decoding: the fake is the other side. */
#include "fake.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------- base64 */

static int b64_value(unsigned char ch, bool lenient)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || (lenient && ch == '-'))
		return 62;
	if (ch == '/' || (lenient && ch == '_'))
		return 63;
	return -1;
}

unsigned char *fake_base64_decode(const char *s, size_t len, bool lenient, size_t *out_len)
{
	size_t pad = 0, n = 0;
	unsigned char *out;
	uint32_t acc = 0;
	int bits = 0;

	while (pad < 2 && len > pad && s[len - 1 - pad] == '=')
		pad++;
	if (!lenient && (len % 4 != 0))
		return NULL;
	if (pad > 0 && len % 4 != 0)
		return NULL; /* padding, but not to a whole quantum */
	if ((len - pad) % 4 == 1)
		return NULL; /* six bits cannot end a byte */
	out = malloc(len / 4 * 3 + 4);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len - pad; i++) {
		int v = b64_value((unsigned char)s[i], lenient);

		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	out[n] = '\0';
	*out_len = n;
	return out;
}

/* ----------------------------------------------------------------- media */

const char *fake_media_sniff(const unsigned char *b, size_t len)
{
	if (len >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
		return "image/png";
	if (len >= 3 && memcmp(b, "\xff\xd8\xff", 3) == 0)
		return "image/jpeg";
	if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
		return "image/gif";
	if (len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
		return "image/webp";
	if (len >= 5 && memcmp(b, "%PDF-", 5) == 0)
		return "application/pdf";
	return NULL;
}

static bool pdf_blank(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\f' || ch == '\0';
}

static bool pdf_name_char(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

int64_t fake_pdf_pages(const unsigned char *pdf, size_t len)
{
	int64_t pages = 0;
	const unsigned char *p = pdf, *end = pdf + len;

	while ((p = memmem(p, (size_t)(end - p), "/Type", 5)) != NULL) {
		p += 5;
		while (p < end && pdf_blank(*p))
			p++;
		/* "/Page" as a whole name: "/Pages" is the page tree */
		if (end - p >= 5 && memcmp(p, "/Page", 5) == 0 &&
		    (end - p == 5 || !pdf_name_char(p[5])))
			pages++;
	}
	return pages;
}

/* ----------------------------------------------------------------- files */

/* A 1x1 image of each type the APIs take; the JPEG is the 125-byte one
 * often quoted as the smallest well-formed. */
static const struct {
	const char *name, *type, *base64;
} images[] = {
        {"tiny.png", "image/png",
         "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5Er"
         "kJggg=="},
        {"tiny.jpg", "image/jpeg",
         "/9j/4AAQSkZJRgABAQEASABIAAD/"
         "2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDRENDg8QEBEQCgwSExIQEw8QE"
         "BD/yQALCAABAAEBAREA/8wABgAQEAX/2gAIAQEAAD8A0s8g/9k="},
        {"tiny.gif", "image/gif", "R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="},
        {"tiny.webp", "image/webp", "UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA=="},
};

#define PDF_MAX_PAGES 500
#define BIG_MAX_BYTES (64u << 20)

/* A buffer that grows; oom once an append failed (b is then freed). */
struct grow {
	char *b;
	size_t len, cap;
	bool oom;
};

__attribute__((format(printf, 2, 3))) static void grow_printf(struct grow *g, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (g->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (g->len + (size_t)n + 1 > g->cap) {
		size_t cap = (g->len + (size_t)n + 1) * 2;
		char *b = realloc(g->b, cap);

		if (b == NULL) {
			free(g->b);
			g->b = NULL;
			g->oom = true;
			return;
		}
		g->b = b;
		g->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(g->b + g->len, g->cap - g->len, fmt, ap);
	va_end(ap);
	g->len += (size_t)n;
}

/* A well-formed PDF of blank pages: catalog, page tree, pages, and an xref
 * table with the true offsets. */
static unsigned char *pdf_make(int pages, size_t *len)
{
	size_t *offsets = calloc((size_t)pages + 3, sizeof(*offsets));
	struct grow g = {NULL, 0, 0, offsets == NULL};
	size_t xref;

	grow_printf(&g, "%%PDF-1.4\n%%fake provider, %d page(s)\n", pages);
	if (!g.oom)
		offsets[1] = g.len;
	grow_printf(&g, "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
	if (!g.oom)
		offsets[2] = g.len;
	grow_printf(&g, "2 0 obj\n<< /Type /Pages /Count %d /Kids [", pages);
	for (int i = 0; i < pages; i++)
		grow_printf(&g, " %d 0 R", i + 3);
	grow_printf(&g, " ] >>\nendobj\n");
	for (int i = 0; i < pages && !g.oom; i++) {
		offsets[i + 3] = g.len;
		grow_printf(&g,
		            "%d 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] "
		            ">>\nendobj\n",
		            i + 3);
	}
	xref = g.len;
	grow_printf(&g, "xref\n0 %d\n0000000000 65535 f \n", pages + 3);
	for (int i = 1; i < pages + 3 && !g.oom; i++)
		grow_printf(&g, "%010zu 00000 n \n", offsets[i]);
	grow_printf(&g, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", pages + 3,
	            xref);
	free(offsets);
	*len = g.len;
	return (unsigned char *)g.b;
}

/* A number that is the whole of s up to suffix, in [lo, hi]; -1 if not. */
static long number_before(const char *s, const char *prefix, const char *suffix, long lo, long hi)
{
	size_t np = strlen(prefix), ns = strlen(suffix), n = strlen(s);
	long v = 0;

	if (n <= np + ns || strncmp(s, prefix, np) != 0 || strcmp(s + n - ns, suffix) != 0)
		return -1;
	for (const char *p = s + np; p < s + n - ns; p++) {
		if (*p < '0' || *p > '9' || v > hi)
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v >= lo && v <= hi ? v : -1;
}

unsigned char *fake_file(const char *name, size_t *len, const char **content_type)
{
	long n;

	for (size_t i = 0; i < sizeof(images) / sizeof(images[0]); i++) {
		if (strcmp(name, images[i].name) == 0) {
			*content_type = images[i].type;
			return fake_base64_decode(images[i].base64, strlen(images[i].base64), false,
			                          len);
		}
	}
	if (strcmp(name, "doc.pdf") == 0)
		name = "pages-1.pdf";
	n = number_before(name, "pages-", ".pdf", 1, PDF_MAX_PAGES);
	if (n > 0) {
		*content_type = "application/pdf";
		return pdf_make((int)n, len);
	}
	n = number_before(name, "big-", ".png", 8, BIG_MAX_BYTES);
	if (n > 0) {
		unsigned char *b = calloc(1, (size_t)n);

		if (b != NULL)
			memcpy(b, "\x89PNG\r\n\x1a\n", 8);
		*len = (size_t)n;
		*content_type = "image/png";
		return b;
	}
	if (strcmp(name, "note.txt") == 0) {
		static const char note[] = "not an image, not a PDF\n";
		unsigned char *b = malloc(sizeof(note));

		if (b != NULL)
			memcpy(b, note, sizeof(note));
		*len = sizeof(note) - 1;
		*content_type = "text/plain";
		return b;
	}
	return NULL;
}
