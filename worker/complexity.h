/* complexity: how hard a job looks, a score in [0,1] for the `auto` strategy
 * (SPEC §6), from the prompt alone or from a classifier model's answer.
 *
 * The heuristic reads the contents of every message once (at most
 * COMPLEXITY_SCAN_BYTES of them for the word features; the length feature
 * sees all) and adds evidence from seven features, each saturating:
 *
 *   length      log-scaled bytes: nothing up to 80 bytes, full at ~12 KB
 *   code        fences, #include, braces and semicolons, code keywords,
 *               programming vocabulary (thread, refactor, segfault, ...)
 *   math        proofs, equations, calculus, probability, LaTeX, x^2, 3x+2
 *   reasoning   multi-step wording: step by step, analyze, justify, design,
 *               trade-offs, derive, evaluate, compare, ...
 *   task        asks for more than a line: write, draft, outline, describe,
 *               pros and cons, differences, ...
 *   questions   the number of '?'
 *   constraints must, exactly, at least, without, numbered items, ...
 *   easy        translate, synonym, capital of, one word, yes or no, ...
 *               (counts against the score)
 *
 * and maps the sum through a logistic curve: raw evidence 0 gives ~0.23,
 * 0.75 gives 0.5, 2 gives ~0.88; easy markers push below 0.23. It is
 * deterministic, allocates nothing for a one-message job, and costs about
 * 20 ns a byte scanned (a few microseconds for a typical prompt): compute it
 * once per job. tests/prompts/labelled.jsonl holds the prompts it is
 * measured on (tests/unit/test_complexity.c).
 *
 * Tiers, for tests and for `promptyard route`: easy below
 * COMPLEXITY_EASY_BELOW, hard from COMPLEXITY_HARD_FROM, medium between. */
#ifndef PROMPTYARD_COMPLEXITY_H
#define PROMPTYARD_COMPLEXITY_H

#include "config.h"
#include "job.h"

#include <stddef.h>

#define COMPLEXITY_EASY_BELOW 0.35
#define COMPLEXITY_HARD_FROM  0.65
#define COMPLEXITY_SCAN_BYTES 32768

/* What the heuristic saw, each feature's evidence (>= 0) before the curve. */
struct complexity_features {
	size_t bytes;  /* all contents */
	int questions; /* '?' */
	double length, code, math, reasoning, task, questions_ev, constraints, easy;
	double raw;   /* the sum, easy subtracted */
	double score; /* in [0,1] */
};

/* The heuristic score of job's messages, in [0,1]. f (may be NULL) receives
 * the features. */
double complexity_score(const struct job *job, struct complexity_features *f);
/* The same on one text (len bytes, need not be NUL-terminated). */
double complexity_score_text(const char *text, size_t len, struct complexity_features *f);

/* "easy", "medium" or "hard". */
const char *complexity_tier(double score);

/* ---------------------------------------------------------------- classifier
 *
 * With router.classifier_model set, the engine may ask that model instead
 * (router_needs_classifier() in router.h says when). The classifier call is
 * an ordinary provider call on a job built by complexity_classifier_job():
 *
 *   system: COMPLEXITY_CLASSIFIER_PROMPT (below)
 *   user:   "Request:\n" + the job's contents, each message as
 *           "[role] content", cut at COMPLEXITY_CLASSIFIER_INPUT_BYTES on a
 *           UTF-8 boundary
 *   max_tokens COMPLEXITY_CLASSIFIER_MAX_TOKENS, temperature 0
 *
 * The expected reply is a single number from 0 to 1 ("0.7"); surrounding
 * whitespace, quotes, a trailing period and a percentage ("70%") are
 * accepted, anything else is not a score. */
#define COMPLEXITY_CLASSIFIER_MAX_TOKENS  8
#define COMPLEXITY_CLASSIFIER_INPUT_BYTES 8192
#define COMPLEXITY_CLASSIFIER_PROMPT                                                               \
	"You rate how hard a request is for a language model to answer well. Reply with a "        \
	"single number between 0 and 1 and nothing else. 0 means trivial (a greeting, a fact "     \
	"lookup, a short translation or rewrite); 0.5 means moderate (a few paragraphs of "        \
	"writing, a short program, a plain explanation); 1 means very hard (multi-step "           \
	"reasoning, proofs, mathematics, complex or concurrent code, system design)."

/* Builds in out (zeroed first; job_clear() it) the classifier's job for job,
 * with id "<job id>#classifier". Returns 0, or -1 with errstr set (the job
 * could not be encoded; the caller falls back to the heuristic). */
int complexity_classifier_job(const struct config *cfg, const struct job *job, struct job *out,
                              char *errstr, size_t errstr_size);

/* Reads a classifier's reply (len bytes). Returns 0 and sets *score in
 * [0,1], or -1 if the reply is not a score. */
int complexity_parse_reply(const char *text, size_t len, double *score);

#endif
