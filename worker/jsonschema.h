/* jsonschema: validates a JSON value against a JSON Schema of the subset
 * OpenAI's strict structured outputs allow (SPEC §13).
 *
 * Keywords that validate: type (a name or an array of names; "integer"
 * takes any number with a zero fraction, 1.0 included), properties,
 * required, additionalProperties (a boolean or a schema), items (a schema;
 * the draft-7 array form is refused), enum, const (JSON equality, where
 * 1 == 1.0), anyOf, $ref, minimum, maximum, minLength, maxLength (Unicode
 * code points), pattern (ECMA-262, an unanchored search: see
 * jsonschema_regex.h), minItems, maxItems; boolean schemas true and false.
 * A keyword applies to instances of its type only (minLength ignores a
 * number), as in drafts 7 and 2020-12.
 *
 * Keywords that change nothing and are accepted anywhere: title,
 * description, $comment, default, examples, deprecated, readOnly,
 * writeOnly, and format, which is an annotation here, never asserted (as in
 * 2020-12's format-annotation vocabulary). $defs and definitions hold
 * schemas for $ref. $schema and $id are accepted at the root only (an $id
 * below it would move the base of the refs under it).
 *
 * $ref: a fragment of this document, "#" or "#/json/pointer" (RFC 6901,
 * percent-decoded), whose target is a schema of the document (under
 * $defs, definitions, properties, ...). Other refs (remote, relative,
 * anchors) are refused. A $ref's siblings may only be the annotations and
 * $defs/definitions: draft 7 ignores the others and 2020-12 applies them,
 * so a schema with them means different things to different validators.
 *
 * Anything else is refused, naming the keyword and where it is. Limits that
 * keep hostile schemas and instances bounded in stack and time: a schema
 * document nested at most JSONSCHEMA_MAX_DEPTH deep and of at most
 * JSONSCHEMA_MAX_VALUES values; patterns of at most
 * JSONSCHEMA_MAX_PATTERN_INSNS instructions together (jsonschema_regex.h);
 * at most JSONSCHEMA_MAX_CHAIN $ref/anyOf in
 * a row without a step into the instance, and no loop of them (a loop
 * would never end); validation nested at most JSONSCHEMA_MAX_NESTING
 * calls deep, of at most JSONSCHEMA_MAX_STEPS steps (a schema applied
 * to a value, an enum member compared) and JSONSCHEMA_MAX_PATTERN_STEPS
 * steps of pattern matching, past which it gives up and reports the
 * instance invalid.
 *
 * Errors are one line in the caller's buffer, without the name of the field
 * that held the schema (the caller adds it): for a schema
 *     keyword "oneOf" at /properties/x is not supported
 * and for an instance (a JSON pointer into it, then the keyword)
 *     at /items/2: keyword "type": expected integer, got string
 * where the root is written "(root)". No instance value appears in an
 * error, only its type, size or name. */
#ifndef PROMPTYARD_JSONSCHEMA_H
#define PROMPTYARD_JSONSCHEMA_H

#include <jansson.h>
#include <stddef.h>

#define JSONSCHEMA_MAX_DEPTH         128
#define JSONSCHEMA_MAX_VALUES        100000
#define JSONSCHEMA_MAX_CHAIN         64
#define JSONSCHEMA_MAX_NESTING       1000
#define JSONSCHEMA_MAX_STEPS         1000000
#define JSONSCHEMA_MAX_PATTERN_INSNS 100000
#define JSONSCHEMA_MAX_PATTERN_STEPS 10000000

/* A schema checked and compiled (its patterns too) for validation. */
struct jsonschema;

/* Checks and compiles schema (borrowed: the result takes its own reference,
 * and the schema must not change while the result lives). Returns a new
 * jsonschema, or NULL with the reason in errstr. */
struct jsonschema *jsonschema_compile(const json_t *schema, char *errstr, size_t errstr_size);

/* Is instance (borrowed) valid against js (borrowed)? 0 if so, else -1
 * with the first failure in errstr. Never blocks longer than the limits
 * above allow; js is not changed, so one may serve many validations. */
int jsonschema_validate(const struct jsonschema *js, const json_t *instance, char *errstr,
                        size_t errstr_size);

void jsonschema_free(struct jsonschema *js);

/* jsonschema_compile, for its verdict only: 0, or -1 with the reason. */
int jsonschema_check(const json_t *schema, char *errstr, size_t errstr_size);

#endif
