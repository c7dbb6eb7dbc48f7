/* complexity: the prompt-difficulty heuristic and the classifier's job and reply.
 *
 * The numbers below were set by hand on tests/prompts/labelled.jsonl; they
 * are evidence weights, not probabilities. A word's weight is what one
 * occurrence adds to its feature; every feature saturates (cap x (1 -
 * e^(-sum/cap))), so a prompt cannot become "hard" by repeating a word. */
#include "complexity.h"

#include "buf.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum feature { F_CODE, F_MATH, F_REASON, F_TASK, F_CONSTRAINT, F_EASY, F_COUNT };

/* Caps: the most evidence one feature can give. */
static const double feature_cap[F_COUNT] = {1.3, 1.3, 1.4, 0.6, 0.5, 0.9};

struct keyword {
	const char *word; /* lower case; phrases of two or three words joined by one space */
	enum feature feature;
	double weight;
};

/* In topic order; keywords_index() makes them searchable. */
static struct keyword keywords[] = {
        /* code: keywords of programming languages */
        {"def", F_CODE, 0.5},
        {"return", F_CODE, 0.4},
        {"import", F_CODE, 0.3},
        {"void", F_CODE, 0.5},
        {"const", F_CODE, 0.3},
        {"static", F_CODE, 0.3},
        {"null", F_CODE, 0.3},
        {"nullptr", F_CODE, 0.6},
        {"async", F_CODE, 0.4},
        {"await", F_CODE, 0.4},
        {"malloc", F_CODE, 0.8},
        {"struct", F_CODE, 0.6},
        {"pointer", F_CODE, 0.6},
        {"pointers", F_CODE, 0.6},
        /* code: programming work */
        {"implement", F_CODE, 0.5},
        {"implementation", F_CODE, 0.5},
        {"function", F_CODE, 0.4},
        {"thread", F_CODE, 0.6},
        {"threads", F_CODE, 0.6},
        {"thread-safe", F_CODE, 1.0},
        {"concurrency", F_CODE, 0.8},
        {"concurrent", F_CODE, 0.7},
        {"atomic", F_CODE, 0.7},
        {"atomics", F_CODE, 0.8},
        {"mutex", F_CODE, 0.8},
        {"deadlock", F_CODE, 0.8},
        {"lock-free", F_CODE, 1.0},
        {"race", F_CODE, 0.4},
        {"races", F_CODE, 0.5},
        {"segfault", F_CODE, 0.8},
        {"debug", F_CODE, 0.5},
        {"debugging", F_CODE, 0.6},
        {"refactor", F_CODE, 0.8},
        {"compile", F_CODE, 0.5},
        {"compiler", F_CODE, 0.6},
        {"parser", F_CODE, 0.7},
        {"tokenizer", F_CODE, 0.7},
        {"algorithm", F_CODE, 0.6},
        {"recursion", F_CODE, 0.6},
        {"recursive", F_CODE, 0.5},
        {"sql", F_CODE, 0.4},
        {"query", F_CODE, 0.3},
        {"regex", F_CODE, 0.4},
        {"python", F_CODE, 0.4},
        {"rust", F_CODE, 0.5},
        {"javascript", F_CODE, 0.4},
        {"typescript", F_CODE, 0.4},
        {"java", F_CODE, 0.4},
        {"golang", F_CODE, 0.4},
        {"kubernetes", F_CODE, 0.5},
        {"jvm", F_CODE, 0.5},
        {"latency", F_CODE, 0.4},
        {"cache", F_CODE, 0.4},
        {"lru", F_CODE, 0.6},
        {"memory", F_CODE, 0.3},
        {"leak", F_CODE, 0.5},
        {"replication", F_CODE, 0.6},
        {"consistency", F_CODE, 0.5},
        {"consistent", F_CODE, 0.4},
        {"distributed", F_CODE, 0.6},
        {"asynchronous", F_CODE, 0.5},
        {"syntax", F_CODE, 0.4},
        {"vulnerability", F_CODE, 0.6},
        {"injection", F_CODE, 0.4},
        {"unit tests", F_CODE, 0.6},
        {"time complexity", F_CODE, 0.8},
        {"data races", F_CODE, 0.8},
        {"data race", F_CODE, 0.8},
        {"use-after-free", F_CODE, 1.0},
        /* math */
        {"prove", F_MATH, 1.0},
        {"proof", F_MATH, 1.0},
        {"theorem", F_MATH, 1.0},
        {"lemma", F_MATH, 1.0},
        {"rigorous", F_MATH, 0.8},
        {"integral", F_MATH, 0.9},
        {"derivative", F_MATH, 0.9},
        {"differentiate", F_MATH, 0.8},
        {"equation", F_MATH, 0.6},
        {"equations", F_MATH, 0.6},
        {"solve", F_MATH, 0.4},
        {"matrix", F_MATH, 0.7},
        {"determinant", F_MATH, 0.8},
        {"eigenvalue", F_MATH, 0.9},
        {"eigenvalues", F_MATH, 0.9},
        {"probability", F_MATH, 0.7},
        {"variance", F_MATH, 0.6},
        {"regression", F_MATH, 0.5},
        {"estimator", F_MATH, 0.7},
        {"minimize", F_MATH, 0.5},
        {"maximize", F_MATH, 0.5},
        {"induction", F_MATH, 0.8},
        {"polynomial", F_MATH, 0.6},
        {"roots", F_MATH, 0.4},
        {"primes", F_MATH, 0.5},
        {"prime", F_MATH, 0.4},
        {"infinitely", F_MATH, 0.5},
        {"undecidable", F_MATH, 1.0},
        {"calculus", F_MATH, 0.7},
        {"statistical", F_MATH, 0.5},
        {"gaussian", F_MATH, 0.6},
        {"formulate", F_MATH, 0.5},
        {"inequality", F_MATH, 0.7},
        {"convex", F_MATH, 0.7},
        {"asymptotic", F_MATH, 0.8},
        {"combinatorics", F_MATH, 0.8},
        {"permutations", F_MATH, 0.6},
        {"closed-form", F_MATH, 0.8},
        {"linear program", F_MATH, 0.8},
        {"linearity", F_MATH, 0.6},
        {"expected value", F_MATH, 0.7},
        {"expected number", F_MATH, 0.7},
        {"without replacement", F_MATH, 0.6},
        {"first principles", F_MATH, 0.6},
        /* reasoning and multi-step work */
        {"step by step", F_REASON, 1.0},
        {"step-by-step", F_REASON, 1.0},
        {"show all steps", F_REASON, 0.6},
        {"analyze", F_REASON, 0.7},
        {"analyse", F_REASON, 0.7},
        {"analysis", F_REASON, 0.5},
        {"explain", F_REASON, 0.3},
        {"when would", F_REASON, 0.3},
        {"choose", F_REASON, 0.2},
        {"why", F_REASON, 0.25},
        {"justify", F_REASON, 0.9},
        {"justified", F_REASON, 0.7},
        {"evaluate", F_REASON, 0.6},
        {"assess", F_REASON, 0.6},
        {"compare", F_REASON, 0.4},
        {"comparison", F_REASON, 0.4},
        {"contrast", F_REASON, 0.4},
        {"trade-off", F_REASON, 0.8},
        {"trade-offs", F_REASON, 0.8},
        {"tradeoff", F_REASON, 0.8},
        {"tradeoffs", F_REASON, 0.8},
        {"design", F_REASON, 0.4},
        {"redesign", F_REASON, 0.5},
        {"architecture", F_REASON, 0.7},
        {"strategy", F_REASON, 0.4},
        {"derive", F_REASON, 0.9},
        {"critique", F_REASON, 0.8},
        {"implications", F_REASON, 0.6},
        {"implies", F_REASON, 0.5},
        {"systematic", F_REASON, 0.6},
        {"hypotheses", F_REASON, 0.6},
        {"hypothesis", F_REASON, 0.6},
        {"mitigate", F_REASON, 0.5},
        {"risks", F_REASON, 0.4},
        {"recommendation", F_REASON, 0.5},
        {"correctness", F_REASON, 0.8},
        {"guarantees", F_REASON, 0.6},
        {"scenarios", F_REASON, 0.5},
        {"detailed", F_REASON, 0.5},
        {"thorough", F_REASON, 0.6},
        {"comprehensive", F_REASON, 0.6},
        {"fallacy", F_REASON, 0.8},
        {"fallacies", F_REASON, 0.8},
        {"causal", F_REASON, 0.7},
        {"confounders", F_REASON, 0.8},
        {"biases", F_REASON, 0.5},
        {"methodology", F_REASON, 0.7},
        {"reconstruct", F_REASON, 0.5},
        {"verify", F_REASON, 0.5},
        {"edge cases", F_REASON, 0.6},
        {"walk me through", F_REASON, 0.6},
        {"estimate", F_REASON, 0.3},
        {"optimize", F_REASON, 0.4},
        {"optimal", F_REASON, 0.5},
        {"heuristic", F_REASON, 0.5},
        {"evidence", F_REASON, 0.4},
        /* tasks that produce more than a line: writing, explaining, planning */
        {"write", F_TASK, 0.3},
        {"draft", F_TASK, 0.3},
        {"create", F_TASK, 0.2},
        {"outline", F_TASK, 0.3},
        {"describe", F_TASK, 0.3},
        {"rewrite", F_TASK, 0.3},
        {"improve", F_TASK, 0.3},
        {"plan", F_TASK, 0.3},
        {"difference", F_TASK, 0.3},
        {"differences", F_TASK, 0.3},
        {"walk through", F_TASK, 0.4},
        {"pros and cons", F_TASK, 0.4},
        {"for and against", F_TASK, 0.4},
        {"arguments", F_TASK, 0.3},
        {"causes", F_TASK, 0.2},
        {"example", F_TASK, 0.2},
        {"examples", F_TASK, 0.2},
        {"alternative", F_TASK, 0.2},
        {"alternatives", F_TASK, 0.2},
        {"highlighting", F_TASK, 0.2},
        {"introduction", F_TASK, 0.2},
        {"cover letter", F_TASK, 0.3},
        {"blog post", F_TASK, 0.3},
        {"email", F_TASK, 0.2},
        {"gradually", F_TASK, 0.2},
        {"explanation", F_TASK, 0.2},
        {"showing", F_TASK, 0.2},
        {"bulleted", F_TASK, 0.2},
        {"how does", F_TASK, 0.2},
        {"works", F_TASK, 0.2},
        /* constraints */
        {"must", F_CONSTRAINT, 0.35},
        {"exactly", F_CONSTRAINT, 0.35},
        {"at least", F_CONSTRAINT, 0.3},
        {"at most", F_CONSTRAINT, 0.3},
        {"no more than", F_CONSTRAINT, 0.3},
        {"less than", F_CONSTRAINT, 0.2},
        {"without", F_CONSTRAINT, 0.25},
        {"ensure", F_CONSTRAINT, 0.3},
        {"requirement", F_CONSTRAINT, 0.4},
        {"requirements", F_CONSTRAINT, 0.4},
        {"constraint", F_CONSTRAINT, 0.5},
        {"constraints", F_CONSTRAINT, 0.5},
        {"correctly", F_CONSTRAINT, 0.3},
        {"every", F_CONSTRAINT, 0.2},
        {"handle", F_CONSTRAINT, 0.25},
        {"configurable", F_CONSTRAINT, 0.3},
        /* easy requests (counted against) */
        {"translate", F_EASY, 0.6},
        {"translation", F_EASY, 0.5},
        {"synonym", F_EASY, 0.8},
        {"antonym", F_EASY, 0.8},
        {"capital of", F_EASY, 0.5},
        {"spell", F_EASY, 0.7},
        {"spelling", F_EASY, 0.5},
        {"define", F_EASY, 0.6},
        {"definition", F_EASY, 0.5},
        {"acronym", F_EASY, 0.6},
        {"hi", F_EASY, 0.5},
        {"hello", F_EASY, 0.5},
        {"thanks", F_EASY, 0.6},
        {"thank you", F_EASY, 0.6},
        {"sentiment", F_EASY, 0.5},
        {"classify", F_EASY, 0.4},
        {"rephrase", F_EASY, 0.5},
        {"grammar", F_EASY, 0.4},
        {"haiku", F_EASY, 0.5},
        {"summarize", F_EASY, 0.3},
        {"summarise", F_EASY, 0.3},
        {"title case", F_EASY, 0.5},
        {"extract", F_EASY, 0.4},
        {"convert", F_EASY, 0.4},
        {"briefly", F_EASY, 0.3},
        {"one word", F_EASY, 0.8},
        {"one sentence", F_EASY, 0.6},
        {"yes or no", F_EASY, 0.8},
        {"true or false", F_EASY, 0.8},
        {"who wrote", F_EASY, 0.5},
        {"what year", F_EASY, 0.5},
        {"what time", F_EASY, 0.4},
        {"what is", F_EASY, 0.2},
        {"stand for", F_EASY, 0.5},
};
#define N_KEYWORDS (sizeof keywords / sizeof keywords[0])

/* Keywords are found through an open-addressing table of FNV-1a hashes,
 * built once on first use and only read afterwards (the result never depends
 * on whether a call was the first). A phrase's hash is carried on from the
 * words before it, so a phrase string is only built when its slot is taken. */
#define KW_SLOTS 1024 /* a power of two, well above 2 x N_KEYWORDS */
#define FNV_INIT UINT32_C(2166136261)
static uint16_t kw_table[KW_SLOTS]; /* keyword index + 1, 0 for empty */

static uint32_t fnv_add(uint32_t h, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * UINT32_C(16777619);
	return h;
}

static void keywords_index(void)
{
	static bool built;
	if (built)
		return;
	for (size_t i = 0; i < N_KEYWORDS; i++) {
		uint32_t h = fnv_add(FNV_INIT, keywords[i].word, strlen(keywords[i].word));
		size_t slot = h & (KW_SLOTS - 1);
		while (kw_table[slot])
			slot = (slot + 1) & (KW_SLOTS - 1);
		kw_table[slot] = (uint16_t)(i + 1);
	}
	built = true;
}

/* The keyword whose text is the concatenation of the parts, given its hash. */
static const struct keyword *keyword_find(uint32_t h, const char *const *parts, int n_parts)
{
	for (size_t slot = h & (KW_SLOTS - 1); kw_table[slot]; slot = (slot + 1) & (KW_SLOTS - 1)) {
		const char *k = keywords[kw_table[slot] - 1].word;
		int i = 0;
		for (; i < n_parts; i++) {
			size_t l = strlen(parts[i]);
			if (strncmp(k, parts[i], l) != 0)
				break;
			k += l;
		}
		if (i == n_parts && *k == '\0')
			return &keywords[kw_table[slot] - 1];
	}
	return NULL;
}

/* Length evidence: nothing up to 80 bytes, LENGTH_CAP at 12000 bytes and
 * beyond, logarithmic between. */
#define LENGTH_CAP 0.8
static double length_evidence(size_t bytes)
{
	if (bytes <= 80)
		return 0;
	double l = log((double)bytes / 80) / log(12000.0 / 80);
	return LENGTH_CAP * (l > 1 ? 1 : l);
}

/* The logistic curve from raw evidence to a score. */
#define CURVE_MID   0.75
#define CURVE_SLOPE 1.6
static double curve(double raw)
{
	return 1 / (1 + exp(-CURVE_SLOPE * (raw - CURVE_MID)));
}

static double saturate(double sum, double cap)
{
	return sum <= 0 ? 0 : cap * (1 - exp(-sum / cap));
}

#define WORD_MAX 32

struct scan {
	double ev[F_COUNT]; /* raw sums before saturation */
	char prev1[WORD_MAX], prev2[WORD_MAX];
	uint32_t after1, after2; /* hash of "prev1 " and of "prev2 prev1 " */
	int questions, braces, semicolons, items;
};

static void add_keyword(struct scan *s, uint32_t h, const char *const *parts, int n_parts)
{
	const struct keyword *k = keyword_find(h, parts, n_parts);
	if (k)
		s->ev[k->feature] += k->weight;
}

/* One word (lower case) after prev2 and prev1: the word and the phrases it ends. */
static void on_word(struct scan *s, const char *w, size_t wl)
{
	static const char *const sp = " ";
	uint32_t hw = fnv_add(FNV_INIT, w, wl);
	add_keyword(s, hw, (const char *const[]){w}, 1);
	if (s->prev1[0]) {
		add_keyword(s, fnv_add(s->after1, w, wl), (const char *const[]){s->prev1, sp, w},
		            3);
		if (s->prev2[0])
			add_keyword(s, fnv_add(s->after2, w, wl),
			            (const char *const[]){s->prev2, sp, s->prev1, sp, w}, 5);
	}
	s->after2 = s->prev1[0] ? fnv_add(fnv_add(s->after1, w, wl), sp, 1) : 0;
	s->after1 = fnv_add(hw, sp, 1);
	memcpy(s->prev2, s->prev1, sizeof s->prev2);
	memcpy(s->prev1, w, wl + 1);
}

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Words, question marks, braces, list items; phrases do not run across a
 * sentence's end. */
static void scan_words(struct scan *s, const char *text, size_t len)
{
	char w[WORD_MAX];
	size_t wl = 0;
	bool too_long = false, line_start = true;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)text[i] : ' ';
		bool inner = (c == '-' || c == '\'') && wl > 0 && i + 1 < len &&
		             is_alnum((unsigned char)text[i + 1]);
		if (is_alnum(c) || inner) {
			if (wl + 1 < WORD_MAX)
				w[wl++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
			else
				too_long = true;
			continue;
		}
		if (wl) {
			w[wl] = '\0';
			if (!too_long)
				on_word(s, w, wl);
			wl = 0;
			too_long = false;
		}
		switch (c) {
		case '?':
			s->questions++;
			/* fall through */
		case '.':
		case '!':
		case ':':
		case '\n': s->prev1[0] = s->prev2[0] = '\0'; break;
		case '{':
		case '}': s->braces++; break;
		case ';': s->semicolons++; break;
		default: break;
		}
		/* "- item", "* item", "1. item", "(a) item" at a line's start. */
		if (line_start && i < len) {
			const char *p = text + i;
			size_t left = len - i;
			if ((left > 1 && (p[0] == '-' || p[0] == '*') && p[1] == ' ') ||
			    (left > 2 && p[0] >= '0' && p[0] <= '9' &&
			     (p[1] == '.' || p[1] == ')')) ||
			    (left > 2 && p[0] == '(' && p[1] >= 'a' && p[1] <= 'h' && p[2] == ')'))
				s->items++;
		}
		line_start = c == '\n';
	}
}

/* Markers that are not words: code syntax and mathematical notation. One
 * pass; each marker counts at most `max` times. */
struct marker {
	const char *text;
	size_t len;
	enum feature feature;
	double weight;
	int max;
};

static const struct marker markers[] = {
        {"```", 3, F_CODE, 0.8, 4},
        {"#include", 8, F_CODE, 1.0, 2},
        {"c++", 3, F_CODE, 0.4, 2},
        {"C++", 3, F_CODE, 0.4, 2},
        {"::", 2, F_CODE, 0.3, 4},
        {"->", 2, F_CODE, 0.3, 4},
        {"=>", 2, F_CODE, 0.3, 4},
        {"==", 2, F_CODE, 0.3, 4},
        {"O(", 2, F_CODE, 0.3, 3},
        {"\\frac", 5, F_MATH, 0.6, 3},
        {"\\sum", 4, F_MATH, 0.6, 3},
        {"\\int", 4, F_MATH, 0.6, 3},
        {"\\sqrt", 5, F_MATH, 0.6, 3},
        {"\\prod", 5, F_MATH, 0.6, 3},
        {"\\lim", 4, F_MATH, 0.6, 3},
        {"\xe2\x89\xa4", 3, F_MATH, 0.4, 3}, /* less-than or equal */
        {"\xe2\x89\xa5", 3, F_MATH, 0.4, 3}, /* greater-than or equal */
        {"\xe2\x88\x91", 3, F_MATH, 0.4, 3}, /* n-ary summation */
        {"\xe2\x88\xab", 3, F_MATH, 0.4, 3}, /* integral */
        {"\xe2\x88\x9a", 3, F_MATH, 0.4, 3}, /* square root */
        {"\xe2\x88\x9e", 3, F_MATH, 0.4, 3}, /* infinity */
};
#define N_MARKERS (sizeof markers / sizeof markers[0])

static void scan_markers(struct scan *s, const char *text, size_t len)
{
	int seen[N_MARKERS] = {0};
	int algebra = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		/* Only these bytes start a marker: the common letters skip the table. */
		if (c == '`' || c == '#' || c == 'c' || c == 'C' || c == ':' || c == '-' ||
		    c == '=' || c == 'O' || c == '\\' || c == 0xe2) {
			for (size_t m = 0; m < N_MARKERS; m++) {
				if (markers[m].text[0] == (char)c && seen[m] < markers[m].max &&
				    len - i >= markers[m].len &&
				    memcmp(text + i, markers[m].text, markers[m].len) == 0) {
					seen[m]++;
					s->ev[markers[m].feature] += markers[m].weight;
				}
			}
		}
		/* Algebra: "x^2", "3x", "2x + 3y". */
		if (i == 0 || i + 1 >= len || algebra >= 12)
			continue;
		unsigned char a = (unsigned char)text[i - 1], n = (unsigned char)text[i + 1];
		if (c == '^' && is_alnum(a) && is_alnum(n))
			algebra += 2;
		else if (a >= '0' && a <= '9' && (c == 'x' || c == 'y' || c == 'z' || c == 'n') &&
		         !is_alnum(n) &&
		         (i < 2 || !is_alnum((unsigned char)text[i - 2]) ||
		          (text[i - 2] >= '0' && text[i - 2] <= '9')))
			algebra++;
	}
	s->ev[F_MATH] += 0.2 * algebra;
	int syms = s->braces + s->semicolons;
	s->ev[F_CODE] += syms >= 4 ? 0.1 * (syms > 20 ? 20 : syms) : 0;
}

double complexity_score_text(const char *text, size_t len, struct complexity_features *f)
{
	struct complexity_features tmp;
	struct scan s;
	if (!f)
		f = &tmp;
	memset(f, 0, sizeof *f);
	memset(&s, 0, sizeof s);
	keywords_index();
	size_t scan = len < COMPLEXITY_SCAN_BYTES ? len : COMPLEXITY_SCAN_BYTES;
	scan_words(&s, text, scan);
	scan_markers(&s, text, scan);

	f->bytes = len;
	f->questions = s.questions;
	f->length = length_evidence(len);
	f->code = saturate(s.ev[F_CODE], feature_cap[F_CODE]);
	f->math = saturate(s.ev[F_MATH], feature_cap[F_MATH]);
	f->reasoning = saturate(s.ev[F_REASON], feature_cap[F_REASON]);
	f->task = saturate(s.ev[F_TASK], feature_cap[F_TASK]);
	/* Sub-questions: a second, third... question each add evidence; so do
	 * enumerated parts. */
	double qs = s.questions > 1 ? 0.15 * (s.questions - 1) : 0;
	qs += s.items > 2 ? 0.05 * (s.items - 2) : 0;
	f->questions_ev = qs > 0.5 ? 0.5 : qs;
	f->constraints = saturate(s.ev[F_CONSTRAINT], feature_cap[F_CONSTRAINT]);
	f->easy = saturate(s.ev[F_EASY], feature_cap[F_EASY]);
	f->raw = f->length + f->code + f->math + f->reasoning + f->task + f->questions_ev +
	         f->constraints - f->easy;
	f->score = curve(f->raw);
	return f->score;
}

double complexity_score(const struct job *job, struct complexity_features *f)
{
	/* The messages are scanned as one text, a newline between two. With one
	 * message (the common case) nothing is copied. */
	if (job->n_messages == 1)
		return complexity_score_text(job->messages[0].content, job->messages[0].content_len,
		                             f);
	char stackbuf[4096] = "";
	size_t total = 0;
	for (size_t i = 0; i < job->n_messages; i++)
		total += job->messages[i].content_len + 1;
	size_t scan = total < COMPLEXITY_SCAN_BYTES ? total : COMPLEXITY_SCAN_BYTES;
	char *text = scan <= sizeof stackbuf ? stackbuf : malloc(scan);
	if (!text)
		return complexity_score_text("", 0, f);
	size_t n = 0;
	for (size_t i = 0; i < job->n_messages && n < scan; i++) {
		size_t take = job->messages[i].content_len;
		if (take > scan - n)
			take = scan - n;
		memcpy(text + n, job->messages[i].content, take);
		n += take;
		if (n < scan)
			text[n++] = '\n';
	}
	double score = complexity_score_text(text, n, f);
	if (f)
		f->bytes = job->content_bytes;
	if (text != stackbuf)
		free(text);
	/* The length feature must see every byte, not only those scanned. */
	if (f && total > scan) {
		double length = length_evidence(job->content_bytes);
		f->raw += length - f->length;
		f->length = length;
		f->score = score = curve(f->raw);
	}
	return score;
}

const char *complexity_tier(double score)
{
	if (score < COMPLEXITY_EASY_BELOW)
		return "easy";
	return score < COMPLEXITY_HARD_FROM ? "medium" : "hard";
}

/* ---------------------------------------------------------------- classifier */

/* The longest prefix of s (len bytes) of at most max bytes that ends on a
 * UTF-8 character boundary. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

int complexity_classifier_job(const struct config *cfg, const struct job *job, struct job *out,
                              char *errstr, size_t errstr_size)
{
	int rc = -1;
	json_t *root = NULL;
	char *value = NULL;
	struct buf text = {0};
	memset(out, 0, sizeof *out);
	out->model = out->budget = -1;

	/* "Request:\n[user] ...\n[assistant] ..." cut at the input limit. */
	const size_t limit = COMPLEXITY_CLASSIFIER_INPUT_BYTES;
	buf_puts(&text, "Request:\n");
	for (size_t i = 0; i < job->n_messages; i++) {
		const struct job_message *m = &job->messages[i];
		size_t mark = text.len;
		buf_printf(&text, "%s[%s] ", i ? "\n" : "", role_name(m->role));
		if (text.len >= limit) {
			text.len = mark;
			text.data[mark] = '\0';
			break;
		}
		size_t take = utf8_cut(m->content, m->content_len, limit - text.len);
		buf_append(&text, m->content, take);
		if (take < m->content_len)
			break;
	}
	root = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s#}], s:i, s:f}", "id", "classifier",
	                 "messages", "role", "system", "content", COMPLEXITY_CLASSIFIER_PROMPT,
	                 "role", "user", "content", text.data, (int)text.len, "max_tokens",
	                 COMPLEXITY_CLASSIFIER_MAX_TOKENS, "temperature", 0.0);
	if (!root) {
		snprintf(errstr, errstr_size, "cannot encode the classifier job");
		goto out;
	}
	if (*cfg->router.classifier_model)
		json_object_set_new(root, "model", json_string(cfg->router.classifier_model));
	if (job->budget >= 0)
		json_object_set_new(root, "budget", json_string(cfg->budgets[job->budget].name));
	value = json_dumps(root, JSON_COMPACT);
	if (!value) {
		snprintf(errstr, errstr_size, "cannot encode the classifier job");
		goto out;
	}
	if (job_decode(cfg, value, strlen(value), out, errstr, errstr_size) != 0) {
		job_clear(out);
		goto out;
	}
	rc = 0;
out:
	free(value);
	buf_free(&text);
	json_decref(root);
	return rc;
}

int complexity_parse_reply(const char *text, size_t len, double *score)
{
	char num[64];
	size_t i = 0, n = 0;
	while (i < len && (isspace((unsigned char)text[i]) || text[i] == '"' || text[i] == '\'' ||
	                   text[i] == '`'))
		i++;
	while (i < len && n + 1 < sizeof num &&
	       ((text[i] >= '0' && text[i] <= '9') || text[i] == '.'))
		num[n++] = text[i++];
	num[n] = '\0';
	if (n == 0 || strcmp(num, ".") == 0)
		return -1;
	/* A sentence's period after the number ("0.7.") is not part of it. */
	if (num[n - 1] == '.' && strchr(num, '.') != num + n - 1) {
		num[--n] = '\0';
		i--;
	}
	char *end;
	double v = strtod(num, &end);
	if (*end || !isfinite(v))
		return -1;
	bool percent = i < len && text[i] == '%';
	if (percent) {
		i++;
		v /= 100;
	}
	while (i < len && (isspace((unsigned char)text[i]) || text[i] == '"' || text[i] == '\'' ||
	                   text[i] == '`' || text[i] == '.'))
		i++;
	if (i != len || v < 0 || v > 1)
		return -1;
	*score = v;
	return 0;
}
