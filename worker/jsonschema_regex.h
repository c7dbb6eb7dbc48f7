/* jsonschema_regex: JSON Schema's `pattern`, an ECMA-262 regular
 * expression, compiled to a small program and searched for in linear time.
 *
 * The C library's regex engines will not do: glibc's regexec takes time
 * quadratic in the subject when an unanchored search fails (`a+b` against
 * 100 KB of `a`: 13 s), and mishandles `^` after a consumed newline. Here a
 * search runs the compiled program once over the subject (Thompson's NFA
 * simulation), in at most (subject length) x (program size) steps, and a
 * caller may bound the steps further.
 *
 * The pattern and the subject are read as Unicode code points (as ECMA-262
 * does with its `u` flag), not UTF-16 units: `.` matches one emoji.
 *
 * Supported: literals; `.` (any code point but \n \r U+2028 U+2029); `^`
 * and `$` (the subject's start and end: no multiline); \b \B (ECMA's word
 * boundaries); `|`; groups `(...)`, `(?:...)`, `(?<name>...)`; quantifiers
 * `* + ? {n} {n,} {n,m}` and their lazy forms (laziness cannot change
 * whether a match exists); classes `[...]` `[^...]` with ranges; escapes
 * \d \D \w \W \s \S (ECMA's ASCII digits and word characters, ECMA's white
 * space and line terminators), \t \n \v \f \r \0 \b (in a class) \cX \xHH
 * \uHHHH (surrogate pairs joined) and a backslash before any other
 * character that is not a letter or digit. `{` `}` `]` that do not make a
 * quantifier or a class are literals (Annex B).
 *
 * Refused, with an error naming the construct: lookahead and lookbehind,
 * backreferences, \p \k \u{...}, other letter escapes, `[]`, a class escape
 * as a range end, a lone surrogate, a quantified assertion, a quantifier
 * with nothing to repeat, group nesting deeper than
 * JSONSCHEMA_REGEX_MAX_DEPTH, a pattern longer than JSONSCHEMA_REGEX_MAX_LEN
 * bytes, and one whose program, each repetition written out as copies of
 * its atom, exceeds JSONSCHEMA_REGEX_MAX_INSNS instructions (a class is one
 * instruction: `.{5000}` fits; `(a{1,100}){1,100}` does not). */
#ifndef PROMPTYARD_JSONSCHEMA_REGEX_H
#define PROMPTYARD_JSONSCHEMA_REGEX_H

#include <stddef.h>

#define JSONSCHEMA_REGEX_MAX_LEN   4096
#define JSONSCHEMA_REGEX_MAX_DEPTH 32
#define JSONSCHEMA_REGEX_MAX_INSNS 10000

struct jsonschema_regex;

/* Compiles pattern[0..len) (UTF-8). Returns a new program, or NULL with
 * the reason in errstr. */
struct jsonschema_regex *jsonschema_regex_compile(const char *pattern, size_t len, char *errstr,
                                                  size_t errstr_size);

/* Does the pattern match anywhere in s[0..len) (UTF-8; a byte that starts
 * no UTF-8 sequence reads as U+FFFD; NUL is a character like others)?
 * Returns 1 or 0; or -1 when the search took more than *budget steps.
 * budget, when not NULL, is decreased by the steps taken (one per
 * instruction a thread visits). */
int jsonschema_regex_search(const struct jsonschema_regex *re, const char *s, size_t len,
                            size_t *budget);

/* The program's instructions, for a caller that bounds the sum over many. */
size_t jsonschema_regex_size(const struct jsonschema_regex *re);

void jsonschema_regex_free(struct jsonschema_regex *re);

#endif
