/* Unit tests of jsonschema: the official JSON-Schema-Test-Suite (draft 7,
 * Debian package json-schema-test-suite), then errors, hostile schemas and
 * instances, and the ECMA-262 pattern translation. */
#include "jsonschema.h"
#include "jsonschema_regex.h"
#include "unit.h"

#include <dirent.h>
#include <jansson.h>
#include <locale.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SUITE_DIR "/usr/share/json-schema-test-suite/tests/draft7"

/* ------------------------------------------------------------ the suite */

/* Why a case (a schema and its tests) of the suite is not run: its schema
 * uses what is outside the subset, so jsonschema_check must refuse it, and
 * its error must contain `needle`. */
static const char R_ALLOF[] = "allOf is outside the subset";
static const char R_ONEOF[] = "oneOf is outside the subset";
static const char R_NOT[] = "not is outside the subset";
static const char R_IF[] = "if/then/else are outside the subset";
static const char R_CONTAINS[] = "contains is outside the subset";
static const char R_DEPS[] = "dependencies is outside the subset";
static const char R_EXCL[] = "exclusiveMinimum/exclusiveMaximum are outside the subset";
static const char R_MULT[] = "multipleOf is outside the subset";
static const char R_NPROPS[] = "minProperties/maxProperties are outside the subset";
static const char R_PATPROPS[] = "patternProperties is outside the subset";
static const char R_PROPNAMES[] = "propertyNames is outside the subset";
static const char R_UNIQUE[] = "uniqueItems is outside the subset";
static const char R_CONTENT[] = "contentMediaType/contentEncoding are outside the subset";
static const char R_TUPLE[] = "the items array form and additionalItems (draft 7 tuples)";
static const char R_REMOTE[] = "a remote $ref (http://...)";
static const char R_ID[] = "an $id below the root (a relative $ref base)";
static const char R_SIBLING[] = "a keyword next to $ref (draft 7 ignores it, 2020-12 applies it)";
static const char R_UNKNOWN[] = "unknown keywords (used as $ref targets)";

static const struct skip {
	const char *file;
	const char *group; /* "*": every case of the file */
	const char *reason;
	const char *needle; /* in jsonschema_check's error */
} skips[] = {
        {"additionalItems.json", "*", R_TUPLE, ""},
        {"additionalProperties.json",
         "additionalProperties being false does not allow other properties", R_PATPROPS,
         "\"patternProperties\""},
        {"additionalProperties.json", "non-ASCII pattern with additionalProperties", R_PATPROPS,
         "\"patternProperties\""},
        {"allOf.json", "*", R_ALLOF, "\"allOf\""},
        {"contains.json", "*", R_CONTAINS, "\"contains\""},
        {"definitions.json", "*", R_REMOTE, "only refs inside the document"},
        {"dependencies.json", "*", R_DEPS, "\"dependencies\""},
        {"exclusiveMaximum.json", "*", R_EXCL, "\"exclusiveMaximum\""},
        {"exclusiveMinimum.json", "*", R_EXCL, "\"exclusiveMinimum\""},
        {"if-then-else.json", "*", R_IF, ""},
        {"items.json", "an array of schemas for items", R_TUPLE, "array form"},
        {"items.json", "items with boolean schemas", R_TUPLE, "array form"},
        {"maxProperties.json", "*", R_NPROPS, "\"maxProperties\""},
        {"minProperties.json", "*", R_NPROPS, "\"minProperties\""},
        {"multipleOf.json", "*", R_MULT, "\"multipleOf\""},
        {"not.json", "*", R_NOT, "\"not\""},
        {"oneOf.json", "*", R_ONEOF, "\"oneOf\""},
        {"patternProperties.json", "*", R_PATPROPS, "\"patternProperties\""},
        {"properties.json", "properties, patternProperties, additionalProperties interaction",
         R_PATPROPS, "\"patternProperties\""},
        {"propertyNames.json", "*", R_PROPNAMES, "\"propertyNames\""},
        {"ref.json", "relative pointer ref to array", R_TUPLE, "array form"},
        {"ref.json", "escaped pointer ref", R_UNKNOWN, "field\" at (root) is not supported"},
        {"ref.json", "ref overrides any sibling keywords", R_SIBLING, "next to \"$ref\""},
        {"ref.json", "remote ref, containing refs itself", R_REMOTE,
         "only refs inside the document"},
        {"ref.json", "Recursive references between schemas", R_ID, "\"$id\""},
        {"refRemote.json", "*", R_REMOTE, ""},
        {"uniqueItems.json", "*", R_UNIQUE, "\"uniqueItems\""},
        {"optional/bignum.json", "float comparison with high precision", R_EXCL,
         "\"exclusiveMaximum\""},
        {"optional/bignum.json", "float comparison with high precision on negative numbers", R_EXCL,
         "\"exclusiveMinimum\""},
        {"optional/content.json", "*", R_CONTENT, "\"content"},
};
#define N_SKIPS (sizeof skips / sizeof *skips)

/* Files of the draft 7 directory that are not read at all. */
static const struct {
	const char *file;
	const char *reason;
} not_run[] = {
        {"optional/ecmascript-regex.json",
         "tests format \"regex\"; format is an annotation here, never asserted"},
        {"optional/format/", "format is an annotation here, never asserted"},
};

/* The files of the subset's keywords: each must be there and run. */
static const char *const must_run[] = {
        "type.json",
        "properties.json",
        "required.json",
        "additionalProperties.json",
        "items.json",
        "enum.json",
        "const.json",
        "anyOf.json",
        "ref.json",
        "definitions.json",
        "minimum.json",
        "maximum.json",
        "minLength.json",
        "maxLength.json",
        "pattern.json",
        "minItems.json",
        "maxItems.json",
        "boolean_schema.json",
        "default.json",
        "optional/bignum.json",
        "optional/zeroTerminatedFloats.json",
};

struct tally {
	int files, groups, tests, passed;
	int skipped_groups[N_SKIPS], skipped_tests[N_SKIPS];
	bool used[N_SKIPS];
	bool ran[sizeof must_run / sizeof *must_run];
};

static const struct skip *find_skip(const char *file, const char *group, size_t *at)
{
	for (size_t i = 0; i < N_SKIPS; i++) {
		if (strcmp(skips[i].file, file) == 0 &&
		    (strcmp(skips[i].group, "*") == 0 || strcmp(skips[i].group, group) == 0)) {
			*at = i;
			return &skips[i];
		}
	}
	return NULL;
}

static void run_file(struct tally *t, const char *dir, const char *file)
{
	char path[512];
	json_error_t jerr;
	snprintf(path, sizeof path, "%s/%s", dir, file);
	json_t *doc = json_load_file(path, 0, &jerr);
	if (!doc) {
		/* jansson refuses integers beyond int64; as reals they load. */
		char why[sizeof jerr.text];
		snprintf(why, sizeof why, "%s", jerr.text);
		doc = json_load_file(path, JSON_DECODE_INT_AS_REAL, &jerr);
		if (doc)
			printf("  note: %s read with JSON_DECODE_INT_AS_REAL (%s)\n", file, why);
	}
	if (!json_is_array(doc)) {
		UNIT_FAIL("%s: cannot read: %s", file, jerr.text);
		json_decref(doc);
		return;
	}
	t->files++;
	for (size_t i = 0; i < sizeof must_run / sizeof *must_run; i++)
		if (strcmp(must_run[i], file) == 0)
			t->ran[i] = true;
	size_t gi;
	json_t *group;
	json_array_foreach (doc, gi, group) {
		const char *desc = json_string_value(json_object_get(group, "description"));
		json_t *tests = json_object_get(group, "tests");
		char err[512] = "";
		size_t si = 0;
		const struct skip *skip = find_skip(file, desc ? desc : "", &si);
		struct jsonschema *js =
		        jsonschema_compile(json_object_get(group, "schema"), err, sizeof err);
		t->groups++;
		if (skip) {
			t->used[si] = true;
			if (js)
				UNIT_FAIL("%s \"%s\": listed as skipped (%s) but accepted", file,
				          desc, skip->reason);
			else if (!strstr(err, skip->needle))
				UNIT_FAIL("%s \"%s\": refused for another reason than \"%s\": %s",
				          file, desc, skip->reason, err);
			t->skipped_groups[si]++;
			t->skipped_tests[si] += (int)json_array_size(tests);
			jsonschema_free(js);
			continue;
		}
		if (!js) {
			UNIT_FAIL("%s \"%s\": refused and not listed: %s", file, desc, err);
			continue;
		}
		size_t ti;
		json_t *test;
		json_array_foreach (tests, ti, test) {
			bool want = json_is_true(json_object_get(test, "valid"));
			char why[512] = "";
			int rc = jsonschema_validate(js, json_object_get(test, "data"), why,
			                             sizeof why);
			t->tests++;
			if ((rc == 0) == want && (rc == 0 || why[0] != '\0'))
				t->passed++;
			else
				UNIT_FAIL("%s \"%s\" / \"%s\": expected %s, got %s %s", file, desc,
				          json_string_value(json_object_get(test, "description")),
				          want ? "valid" : "invalid", rc == 0 ? "valid" : "invalid",
				          why);
		}
		jsonschema_free(js);
	}
	json_decref(doc);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json files of dir (prefix + name, sorted); the count in *n. */
static char **list_json(const char *dir, const char *prefix, size_t *n)
{
	DIR *d = opendir(dir);
	char **names = NULL;
	*n = 0;
	if (!d)
		return NULL;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		names = realloc(names, (*n + 1) * sizeof *names);
		names[*n] = malloc(strlen(prefix) + len + 1);
		sprintf(names[*n], "%s%s", prefix, e->d_name);
		(*n)++;
	}
	closedir(d);
	qsort(names, *n, sizeof *names, name_cmp);
	return names;
}

TEST(official_suite_draft7)
{
	struct tally t = {0};
	size_t n_core, n_opt;
	char **core = list_json(SUITE_DIR, "", &n_core);
	char **opt = list_json(SUITE_DIR "/optional", "optional/", &n_opt);
	if (n_core == 0) {
		UNIT_FAIL("no suite at %s: install json-schema-test-suite (deploy/install-deps.sh)",
		          SUITE_DIR);
		return;
	}
	for (size_t i = 0; i < n_core + n_opt; i++) {
		const char *file = i < n_core ? core[i] : opt[i - n_core];
		bool skip_file = false;
		for (size_t k = 0; k < sizeof not_run / sizeof *not_run; k++)
			skip_file |= strcmp(file, not_run[k].file) == 0;
		if (!skip_file)
			run_file(&t, SUITE_DIR, file);
		free(i < n_core ? core[i] : opt[i - n_core]);
	}
	free(core);
	free(opt);

	for (size_t i = 0; i < sizeof must_run / sizeof *must_run; i++)
		if (!t.ran[i])
			UNIT_FAIL("%s was not run", must_run[i]);
	for (size_t i = 0; i < N_SKIPS; i++)
		if (!t.used[i])
			UNIT_FAIL("skip entry %s \"%s\" matched no case", skips[i].file,
			          skips[i].group);

	int skipped_groups = 0, skipped_tests = 0;
	for (size_t i = 0; i < N_SKIPS; i++) {
		skipped_groups += t.skipped_groups[i];
		skipped_tests += t.skipped_tests[i];
	}
	printf("  suite draft7: %d files, %d cases (%d run, %d skipped); tests: %d run, %d passed, "
	       "%d skipped\n",
	       t.files, t.groups, t.groups - skipped_groups, skipped_groups, t.tests, t.passed,
	       skipped_tests);
	/* The counts per reason (a reason may serve several entries). */
	for (size_t i = 0; i < N_SKIPS; i++) {
		bool first = true;
		int groups = 0, tests = 0;
		for (size_t k = 0; k < N_SKIPS; k++) {
			if (skips[k].reason != skips[i].reason)
				continue;
			first = first && k >= i;
			groups += t.skipped_groups[k];
			tests += t.skipped_tests[k];
		}
		if (first)
			printf("  skipped: %3d cases, %3d tests: %s\n", groups, tests,
			       skips[i].reason);
	}
	for (size_t k = 0; k < sizeof not_run / sizeof *not_run; k++)
		printf("  not run: %s: %s\n", not_run[k].file, not_run[k].reason);
	CHECK(t.passed == t.tests);
	CHECK(t.tests > 150);
}

/* ---------------------------------------------------------------- helpers */

static json_t *J(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (!v)
		UNIT_FAIL("bad JSON in the test: %s: %s", text, e.text);
	return v;
}

static char err[1024];

/* jsonschema_check of the schema text. */
static int check(const char *schema)
{
	json_t *s = J(schema);
	err[0] = '\0';
	int rc = jsonschema_check(s, err, sizeof err);
	json_decref(s);
	return rc;
}

/* Validates the instance text against the schema text; -2 when the schema
 * is refused. */
static int validate(const char *schema, const char *instance)
{
	json_t *s = J(schema), *x = J(instance);
	err[0] = '\0';
	struct jsonschema *js = jsonschema_compile(s, err, sizeof err);
	int rc = js ? jsonschema_validate(js, x, err, sizeof err) : -2;
	jsonschema_free(js);
	json_decref(s);
	json_decref(x);
	return rc;
}

/* -------------------------------------------------------------- checking */

TEST(check_names_keyword_and_place)
{
	CHECK_INT(check("{\"properties\":{\"x\":{\"oneOf\":[{\"type\":\"string\"}]}}}"), -1);
	CHECK_STR(err, "keyword \"oneOf\" at /properties/x is not supported");
	CHECK_INT(check("{\"allOf\":[true]}"), -1);
	CHECK_STR(err, "keyword \"allOf\" at (root) is not supported");
	CHECK_INT(check("{\"items\":{\"anyOf\":[{\"type\":\"string\"},{\"not\":{}}]}}"), -1);
	CHECK_STR(err, "keyword \"not\" at /items/anyOf/1 is not supported");
	CHECK_INT(check("{\"$defs\":{\"a/b~\":{\"uniqueItems\":true}}}"), -1);
	CHECK_STR(err, "keyword \"uniqueItems\" at /$defs/a~1b~0 is not supported");
	CHECK_INT(check("{\"type\":\"strin\"}"), -1);
	CHECK_STR(err, "keyword \"type\" at (root): \"strin\" is not a type");
	CHECK_INT(check("{\"type\":[\"string\",3]}"), -1);
	CHECK_HAS(err, "keyword \"type\" at (root): member 1");
	CHECK_INT(check("{\"type\":[]}"), -1);
	CHECK_INT(check("{\"required\":\"a\"}"), -1);
	CHECK_STR(err, "keyword \"required\" at (root): must be an array of strings");
	CHECK_INT(check("{\"minLength\":-1}"), -1);
	CHECK_STR(err, "keyword \"minLength\" at (root): must be a non-negative integer");
	CHECK_INT(check("{\"maxItems\":1.5}"), -1);
	CHECK_INT(check("{\"maxItems\":2.0}"), 0);
	CHECK_INT(check("{\"minimum\":\"3\"}"), -1);
	CHECK_INT(check("{\"anyOf\":[]}"), -1);
	CHECK_INT(check("{\"properties\":{\"a\":3}}"), -1);
	CHECK_STR(err, "the schema at /properties/a is not a schema (an object or a boolean)");
	CHECK_INT(check("42"), -1);
	CHECK_INT(check("{\"items\":[{}]}"), -1);
	CHECK_HAS(err, "keyword \"items\" at (root): the array form");
	CHECK_INT(check("{\"pattern\":\"^(?=a)\"}"), -1);
	CHECK_HAS(err, "keyword \"pattern\" at (root): lookahead (?= is not supported");
	CHECK_INT(check("{\"properties\":{\"p\":{\"pattern\":\"(a\"}}}"), -1);
	CHECK_HAS(err, "keyword \"pattern\" at /properties/p: a group ( without its )");
}

TEST(check_accepts_annotations_and_refuses_misplaced_ids)
{
	CHECK_INT(check("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\","
	                "\"$id\":\"https://example.com/s\",\"title\":\"t\",\"description\":\"d\","
	                "\"$comment\":\"c\",\"type\":\"object\",\"properties\":{\"when\":"
	                "{\"type\":\"string\",\"format\":\"date-time\",\"default\":\"x\","
	                "\"examples\":[\"y\"],\"deprecated\":false,\"readOnly\":true,"
	                "\"writeOnly\":false}},\"required\":[\"when\"],"
	                "\"additionalProperties\":false}"),
	          0);
	CHECK_INT(check("{\"properties\":{\"a\":{\"$id\":\"x\"}}}"), -1);
	CHECK_STR(err, "keyword \"$id\" at /properties/a: is only supported at the root");
	CHECK_INT(check("{\"items\":{\"$schema\":\"x\"}}"), -1);
	CHECK_INT(check("{\"$id\":5}"), -1);
}

TEST(check_resolves_refs)
{
	/* $defs, definitions, the root, any schema of the document, escapes. */
	CHECK_INT(check("{\"$defs\":{\"a\":{\"type\":\"integer\"}},\"$ref\":\"#/$defs/a\"}"), 0);
	CHECK_INT(check("{\"definitions\":{\"a\":true},\"items\":{\"$ref\":\"#/definitions/a\"}}"),
	          0);
	CHECK_INT(check("{\"properties\":{\"next\":{\"$ref\":\"#\"}}}"), 0);
	CHECK_INT(check("{\"properties\":{\"a\":{\"type\":\"null\"},\"b\":{\"$ref\":"
	                "\"#/properties/a\"}}}"),
	          0);
	CHECK_INT(
	        check("{\"$defs\":{\"x\":{\"$defs\":{\"y\":{}}}},\"$ref\":\"#/$defs/x/$defs/y\"}"),
	        0);
	CHECK_INT(check("{\"$ref\":\"#/$defs/nope\"}"), -1);
	CHECK_STR(err, "keyword \"$ref\" at (root): \"#/$defs/nope\" does not resolve");
	CHECK_INT(check("{\"enum\":[{}],\"items\":{\"$ref\":\"#/enum/0\"}}"), -1);
	CHECK_STR(err, "keyword \"$ref\" at /items: \"#/enum/0\" is not a schema of the document");
	CHECK_INT(check("{\"properties\":{\"a\":{}},\"items\":{\"$ref\":\"#/properties\"}}"), -1);
	CHECK_INT(check("{\"$ref\":\"http://example.com/s.json\"}"), -1);
	CHECK_HAS(err, "only refs inside the document");
	CHECK_INT(check("{\"$ref\":\"other.json#/a\"}"), -1);
	CHECK_INT(check("{\"$ref\":\"#anchor\"}"), -1);
	CHECK_INT(check("{\"$ref\":\"#/%zz\"}"), -1);
	CHECK_HAS(err, "malformed %-escape");
	CHECK_INT(check("{\"$defs\":{\"a\":{}},\"$ref\":\"#/$defs/a\",\"type\":\"object\"}"), -1);
	CHECK_STR(err, "keyword \"type\" at (root): next to \"$ref\" is not supported (draft 7 "
	               "ignores it, 2020-12 applies it)");
	/* Annotations may stand next to $ref. */
	CHECK_INT(check("{\"$defs\":{\"a\":{}},\"properties\":{\"p\":{\"$ref\":\"#/$defs/a\","
	                "\"description\":\"d\",\"title\":\"t\"}}}"),
	          0);
}

TEST(escaped_pointer_refs)
{
	const char *s = "{\"$defs\":{\"a/b\":{\"type\":\"integer\"},\"c~d\":{\"type\":\"string\"},"
	                "\"e%f\":{\"type\":\"null\"}},\"properties\":{"
	                "\"x\":{\"$ref\":\"#/$defs/a~1b\"},\"y\":{\"$ref\":\"#/$defs/c~0d\"},"
	                "\"z\":{\"$ref\":\"#/$defs/e%25f\"}}}";
	CHECK_INT(validate(s, "{\"x\":1,\"y\":\"s\",\"z\":null}"), 0);
	CHECK_INT(validate(s, "{\"x\":\"1\"}"), -1);
	CHECK_INT(validate(s, "{\"y\":1}"), -1);
	CHECK_INT(validate(s, "{\"z\":1}"), -1);
	CHECK_STR(err, "at /z: keyword \"type\": expected null, got integer");
}

TEST(ref_loops_are_refused)
{
	CHECK_INT(check("{\"$ref\":\"#\"}"), -1);
	CHECK_HAS(err, "keyword \"$ref\" at (root): a loop");
	CHECK_INT(
	        check("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"anyOf\":[{\"type\":"
	              "\"null\"},{\"$ref\":\"#/$defs/a\"}]}},\"items\":{\"$ref\":\"#/$defs/a\"}}"),
	        -1);
	CHECK_HAS(err, "a loop of \"$ref\"/\"anyOf\" that never steps into the instance");
	CHECK_INT(check("{\"anyOf\":[{\"$ref\":\"#\"}]}"), -1);
	CHECK_HAS(err, "keyword \"$ref\" at /anyOf/0: a loop");
	/* Through properties or items the instance gets smaller: allowed. */
	CHECK_INT(check("{\"anyOf\":[{\"type\":\"null\"},{\"type\":\"array\",\"items\":"
	                "{\"$ref\":\"#\"}}]}"),
	          0);
}

/* A chain of n refs: $defs d0 -> d1 -> ... -> dn = {}. */
static json_t *ref_chain(int n)
{
	json_t *defs = json_object(), *root = json_object();
	char name[32], ref[48];
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "d%d", i);
		snprintf(ref, sizeof ref, "#/$defs/d%d", i + 1);
		json_object_set_new(defs, name, json_pack("{s:s}", "$ref", ref));
	}
	snprintf(name, sizeof name, "d%d", n);
	json_object_set_new(defs, name, json_pack("{s:s}", "type", "integer"));
	json_object_set_new(root, "$defs", defs);
	json_object_set_new(root, "items", json_pack("{s:s}", "$ref", "#/$defs/d0"));
	return root;
}

TEST(ref_chains_are_bounded)
{
	json_t *ok = ref_chain(JSONSCHEMA_MAX_CHAIN - 1), *x = J("[1,2]");
	struct jsonschema *js = jsonschema_compile(ok, err, sizeof err);
	CHECK(js != NULL);
	CHECK_INT(jsonschema_validate(js, x, err, sizeof err), 0);
	jsonschema_free(js);
	json_t *bad = ref_chain(JSONSCHEMA_MAX_CHAIN + 1);
	CHECK_INT(jsonschema_check(bad, err, sizeof err), -1);
	CHECK_HAS(err, "keyword \"$ref\" at /$defs/d0: more than 64");
	json_t *huge = ref_chain(30000);
	CHECK_INT(jsonschema_check(huge, err, sizeof err), -1);
	CHECK_HAS(err, "more than 64");
	json_decref(ok);
	json_decref(bad);
	json_decref(huge);
	json_decref(x);
}

/* ------------------------------------------------------------ validating */

TEST(validation_errors_name_place_and_keyword)
{
	const char *s =
	        "{\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\",\"items\":"
	        "{\"type\":\"integer\"}},\"name\":{\"type\":\"string\",\"minLength\":2,"
	        "\"maxLength\":3,\"pattern\":\"^[a-z]+$\"},\"n\":{\"type\":\"number\","
	        "\"minimum\":0,\"maximum\":10.5},\"kind\":{\"enum\":[\"a\",\"b\"]},"
	        "\"v\":{\"const\":1},\"a/b\":{\"type\":\"null\"},\"u\":{\"anyOf\":[{\"type\":"
	        "\"string\"},{\"type\":\"null\"}]},\"t\":{\"type\":[\"string\",\"null\"]},"
	        "\"list\":{\"minItems\":1,\"maxItems\":2}},"
	        "\"required\":[\"name\"],\"additionalProperties\":false}";
	CHECK_INT(validate(s, "{\"name\":\"ab\"}"), 0);
	CHECK_INT(validate(s, "{\"name\":\"ab\",\"items\":[1,2,\"3\"]}"), -1);
	CHECK_STR(err, "at /items/2: keyword \"type\": expected integer, got string");
	CHECK_INT(validate(s, "{}"), -1);
	CHECK_STR(err, "at (root): keyword \"required\": property \"name\" is missing");
	CHECK_INT(validate(s, "[]"), -1);
	CHECK_STR(err, "at (root): keyword \"type\": expected object, got array");
	CHECK_INT(validate(s, "{\"name\":\"ab\",\"extra\":1}"), -1);
	CHECK_STR(err, "at (root): keyword \"additionalProperties\": property \"extra\" is not "
	               "allowed");
	CHECK_INT(validate(s, "{\"name\":\"a\"}"), -1);
	CHECK_STR(err, "at /name: keyword \"minLength\": 1 characters, fewer than 2");
	CHECK_INT(validate(s, "{\"name\":\"abcd\"}"), -1);
	CHECK_STR(err, "at /name: keyword \"maxLength\": 4 characters, more than 3");
	CHECK_INT(validate(s, "{\"name\":\"aB\"}"), -1);
	CHECK_STR(err, "at /name: keyword \"pattern\": does not match \"^[a-z]+$\"");
	CHECK_INT(validate(s, "{\"name\":\"ab\",\"n\":-1}"), -1);
	CHECK_STR(err, "at /n: keyword \"minimum\": less than 0");
	CHECK_INT(validate(s, "{\"name\":\"ab\",\"n\":10.6}"), -1);
	CHECK_STR(err, "at /n: keyword \"maximum\": greater than 10.5");
	CHECK_INT(validate(s, "{\"name\":\"ab\",\"kind\":\"c\"}"), -1);
	CHECK_STR(err, "at /kind: keyword \"enum\": not one of the 2 values");
	CHECK_INT(validate(s, "{\"name\":\"ab\",\"v\":2}"), -1);
	CHECK_STR(err, "at /v: keyword \"const\": not the value required");
	CHECK_INT(validate(s, "{\"name\":\"ab\",\"a/b\":1}"), -1);
	CHECK_STR(err, "at /a~1b: keyword \"type\": expected null, got integer");
	CHECK_INT(validate(s, "{\"name\":\"ab\",\"u\":1}"), -1);
	CHECK_STR(err, "at /u: keyword \"anyOf\": matches none of the 2 schemas");
	CHECK_INT(validate(s, "{\"name\":\"ab\",\"t\":1.5}"), -1);
	CHECK_STR(err, "at /t: keyword \"type\": expected null or string, got number");
	CHECK_INT(validate(s, "{\"name\":\"ab\",\"list\":[]}"), -1);
	CHECK_STR(err, "at /list: keyword \"minItems\": 0 items, fewer than 1");
	CHECK_INT(validate(s, "{\"name\":\"ab\",\"list\":[1,2,3]}"), -1);
	CHECK_STR(err, "at /list: keyword \"maxItems\": 3 items, more than 2");
	CHECK_INT(validate("{\"items\":false}", "[1]"), -1);
	CHECK_STR(err, "at /0: nothing is allowed here (the schema is false)");
	CHECK_INT(validate("{\"additionalProperties\":{\"type\":\"string\"}}", "{\"~\":1}"), -1);
	CHECK_STR(err, "at /~0: keyword \"type\": expected string, got integer");
}

TEST(numbers_integers_and_equality)
{
	CHECK_INT(validate("{\"type\":\"integer\"}", "1.0"), 0);
	CHECK_INT(validate("{\"type\":\"integer\"}", "-0.0"), 0);
	CHECK_INT(validate("{\"type\":\"integer\"}", "1e300"), 0);
	CHECK_INT(validate("{\"type\":\"integer\"}", "1.5"), -1);
	CHECK_INT(validate("{\"type\":\"number\"}", "7"), 0);
	CHECK_INT(validate("{\"type\":\"integer\"}", "\"1\""), -1);
	/* An integer and a real compared exactly: 2^53 + 1 is not 2^53. */
	CHECK_INT(validate("{\"maximum\":9007199254740993}", "9007199254740992.0"), 0);
	CHECK_INT(validate("{\"maximum\":9007199254740992.0}", "9007199254740993"), -1);
	CHECK_INT(validate("{\"minimum\":9007199254740993}", "9007199254740992.0"), -1);
	CHECK_INT(validate("{\"maximum\":1e19}", "9223372036854775807"), 0);
	CHECK_INT(validate("{\"minimum\":-1e19}", "-9223372036854775807"), 0);
	CHECK_INT(validate("{\"maximum\":-1e19}", "-9223372036854775807"), -1);
	CHECK_INT(validate("{\"minimum\":1.5}", "1"), -1);
	CHECK_INT(validate("{\"minimum\":1.5}", "2"), 0);
	CHECK_INT(validate("{\"maximum\":-1.5}", "-1"), -1);
	CHECK_INT(validate("{\"maximum\":-1.5}", "-2"), 0);
	/* enum and const: 1 == 1.0, deep; strings with NUL compared whole. */
	CHECK_INT(validate("{\"enum\":[1,\"a\"]}", "1.0"), 0);
	CHECK_INT(validate("{\"const\":{\"a\":[1,{\"b\":2.0}]}}", "{\"a\":[1.0,{\"b\":2}]}"), 0);
	CHECK_INT(validate("{\"const\":{\"a\":[1,{\"b\":2.0}]}}", "{\"a\":[1.0,{\"b\":3}]}"), -1);
	CHECK_INT(validate("{\"const\":{\"a\":1}}", "{\"a\":1,\"b\":1}"), -1);
	CHECK_INT(validate("{\"const\":[1]}", "[1,1]"), -1);
	CHECK_INT(validate("{\"const\":\"a\\u0000b\"}", "\"a\\u0000b\""), 0);
	CHECK_INT(validate("{\"const\":\"a\\u0000b\"}", "\"a\\u0000c\""), -1);
	CHECK_INT(validate("{\"const\":\"a\"}", "\"a\\u0000\""), -1);
	CHECK_INT(validate("{\"const\":false}", "0"), -1);
	CHECK_INT(validate("{\"const\":null}", "null"), 0);
	CHECK_INT(validate("{\"enum\":[]}", "null"), -1);
}

TEST(lengths_count_code_points)
{
	/* 3 code points of 3 bytes each; U+1F600 is 4 bytes, 1 code point
	 * (2 UTF-16 units: JSON Schema counts code points). */
	CHECK_INT(validate("{\"maxLength\":3}", "\"\\u65e5\\u672c\\u8a9e\""), 0);
	CHECK_INT(validate("{\"maxLength\":2}", "\"\\u65e5\\u672c\\u8a9e\""), -1);
	CHECK_STR(err, "at (root): keyword \"maxLength\": 3 characters, more than 2");
	CHECK_INT(validate("{\"minLength\":3}", "\"\\u65e5\\u672c\\u8a9e\""), 0);
	CHECK_INT(validate("{\"maxLength\":1}", "\"\\ud83d\\ude00\""), 0);
	CHECK_INT(validate("{\"minLength\":2}", "\"\\ud83d\\ude00\""), -1);
	CHECK_INT(validate("{\"maxLength\":2}", "\"\\u00e9\\u0000\""), 0);
	CHECK_INT(validate("{\"minLength\":2}", "\"\\u00e9\\u0000\""), 0);
	CHECK_INT(validate("{\"minLength\":3}", "\"\\u00e9\\u0000\""), -1);
	CHECK_INT(validate("{\"minLength\":0,\"maxLength\":0}", "\"\""), 0);
}

/* ---------------------------------------------------------- hostile input */

/* {"properties":{"a": ... }} nested `levels` deep, built without recursion. */
static json_t *deep_schema(int levels)
{
	json_t *inner = json_true();
	for (int i = 0; i < levels; i++)
		inner = json_pack("{s:{s:o}}", "properties", "a", inner);
	return inner;
}

/* [[[...]]] `levels` deep. */
static json_t *deep_array(int levels)
{
	json_t *inner = json_array();
	for (int i = 0; i < levels; i++) {
		json_t *outer = json_array();
		json_array_append_new(outer, inner);
		inner = outer;
	}
	return inner;
}

/* Frees a deep chain from the top, so that no free recurses deeply. */
static void free_deep(json_t *v)
{
	while (v) {
		json_t *next = NULL;
		if (json_is_array(v) && json_array_size(v) == 1) {
			next = json_incref(json_array_get(v, 0));
			json_array_clear(v);
		} else if (json_is_object(v) && json_object_size(v) == 1) {
			json_t *p = json_object_get(v, "properties");
			next = json_incref(p ? p : json_object_get(v, "a"));
			json_object_clear(v);
		}
		json_decref(v);
		v = next;
	}
}

TEST(hostile_deep_schema)
{
	json_t *s = deep_schema(100000);
	CHECK_INT(jsonschema_check(s, err, sizeof err), -1);
	CHECK_HAS(err, "the schema is nested deeper than 128 levels at /properties/a/properties/a");
	free_deep(s);
	/* Just under the limit (2 levels per schema) is fine. */
	s = deep_schema(JSONSCHEMA_MAX_DEPTH / 2);
	CHECK_INT(jsonschema_check(s, err, sizeof err), 0);
	json_decref(s);
	/* A deep enum value counts too. */
	s = json_pack("{s:[o]}", "enum", deep_array(1000));
	CHECK_INT(jsonschema_check(s, err, sizeof err), -1);
	CHECK_HAS(err, "nested deeper than 128 levels at /enum/0/0/0");
	free_deep(json_incref(json_array_get(json_object_get(s, "enum"), 0)));
	json_decref(s);
}

TEST(hostile_shared_subschemas)
{
	/* Each level holds the next twice (jansson shares it): 2^40 places. */
	json_t *s = json_true();
	for (int i = 0; i < 40; i++) {
		json_t *next = json_pack("{s:[O,O]}", "anyOf", s, s);
		json_decref(s);
		s = next;
	}
	CHECK_INT(jsonschema_check(s, err, sizeof err), -1);
	CHECK_STR(err, "the schema holds more than 100000 values");
	json_decref(s);
}

TEST(hostile_deep_instance)
{
	/* A recursive schema against an array nested 100,000 deep. */
	json_t *s = J("{\"anyOf\":[{\"type\":\"null\"},{\"type\":\"array\",\"items\":"
	              "{\"$ref\":\"#\"}}]}");
	struct jsonschema *js = jsonschema_compile(s, err, sizeof err);
	CHECK(js != NULL);
	json_t *x = deep_array(100000);
	CHECK_INT(jsonschema_validate(js, x, err, sizeof err), -1);
	CHECK_HAS(err, "gave up at a nesting deeper than 1000");
	free_deep(x);
	x = deep_array(100);
	CHECK_INT(jsonschema_validate(js, x, err, sizeof err), 0);
	json_decref(x);
	/* The same deep instance against enum and const (compared, not walked far). */
	jsonschema_free(js);
	json_decref(s);
	x = deep_array(100000);
	CHECK_INT(validate("{\"const\":[[[1]]]}", "[[[1]]]"), 0);
	s = J("{\"enum\":[[[[1]]], [[[[[]]]]]]}");
	js = jsonschema_compile(s, err, sizeof err);
	CHECK_INT(jsonschema_validate(js, x, err, sizeof err), -1);
	CHECK_STR(err, "at (root): keyword \"enum\": not one of the 2 values");
	jsonschema_free(js);
	json_decref(s);
	free_deep(x);
}

TEST(hostile_huge_enum)
{
	json_t *values = json_array();
	for (int i = 0; i < 200000; i++)
		json_array_append_new(values, json_integer(i));
	json_t *s = json_pack("{s:o}", "enum", values);
	CHECK_INT(jsonschema_check(s, err, sizeof err), -1);
	CHECK_STR(err, "the schema holds more than 100000 values");
	json_decref(s);

	values = json_array();
	for (int i = 0; i < 50000; i++)
		json_array_append_new(values, json_integer(i));
	s = json_pack("{s:{s:o}}", "items", "enum", values);
	struct jsonschema *js = jsonschema_compile(s, err, sizeof err);
	CHECK(js != NULL);
	json_t *x = json_pack("[i,f]", 49999, 3.0);
	CHECK_INT(jsonschema_validate(js, x, err, sizeof err), 0);
	json_decref(x);
	/* 100 values each found after 50,000 comparisons: past the step budget. */
	x = json_array();
	for (int i = 0; i < 100; i++)
		json_array_append_new(x, json_integer(49999));
	CHECK_INT(jsonschema_validate(js, x, err, sizeof err), -1);
	CHECK_HAS(err, "gave up after 1000000 validation steps");
	json_decref(x);
	jsonschema_free(js);
	json_decref(s);
}

TEST(hostile_exponential_any_of)
{
	/* d_i = anyOf[d_{i+1}, d_{i+1}], d_30 = false: 2^30 paths, cut by the budget
	 * (30 levels of 2 in-place edges stay within JSONSCHEMA_MAX_CHAIN). */
	json_t *defs = json_object();
	char name[16], ref[32];
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof name, "d%d", i);
		snprintf(ref, sizeof ref, "#/$defs/d%d", i + 1);
		json_object_set_new(
		        defs, name,
		        json_pack("{s:[{s:s},{s:s}]}", "anyOf", "$ref", ref, "$ref", ref));
	}
	json_object_set_new(defs, "d30", json_false());
	json_t *s = json_pack("{s:o,s:s}", "$defs", defs, "$ref", "#/$defs/d0");
	struct jsonschema *js = jsonschema_compile(s, err, sizeof err);
	CHECK(js != NULL);
	json_t *x = json_integer(1);
	if (js)
		CHECK_INT(jsonschema_validate(js, x, err, sizeof err), -1);
	CHECK_HAS(err, "gave up after 1000000 validation steps");
	json_decref(x);
	jsonschema_free(js);
	json_decref(s);
}

/* A JSON string of n copies of the characters of `unit`, then `tail`. */
static json_t *long_string(size_t n, const char *unit, const char *tail)
{
	size_t u = strlen(unit), t = strlen(tail);
	char *text = malloc(n * u + t + 1);
	for (size_t i = 0; i < n; i++)
		memcpy(text + i * u, unit, u);
	memcpy(text + n * u, tail, t + 1);
	json_t *v = json_string(text);
	free(text);
	return v;
}

TEST(hostile_patterns)
{
	CHECK_INT(check("{\"pattern\":\"(a{1000}){1000}\"}"), -1);
	CHECK_HAS(err, "keyword \"pattern\" at (root): a pattern of more than 10000 instructions");
	CHECK_INT(check("{\"pattern\":\"(a{1,100}){1,100}\"}"), -1);
	CHECK_INT(check("{\"pattern\":\"a{99999999999999999999}\"}"), -1);
	CHECK_HAS(err, "more than 10000 instructions");
	CHECK_INT(check("{\"pattern\":\"^.{5000}$\"}"), 0);
	CHECK_INT(check("{\"pattern\":\"^.{10000}$\"}"), -1);
	CHECK_INT(check("{\"pattern\":\"^[a-z]{1,1000}$\"}"), 0);
	char deep[200] = "";
	for (int i = 0; i < 40; i++)
		strcat(deep, "(");
	strcat(deep, "a");
	for (int i = 0; i < 40; i++)
		strcat(deep, ")");
	char s[300];
	snprintf(s, sizeof s, "{\"pattern\":\"%s\"}", deep);
	CHECK_INT(check(s), -1);
	CHECK_HAS(err, "groups nested deeper than 32");
	char *longp = malloc(5000);
	memset(longp, 'a', 4999);
	longp[4999] = '\0';
	json_t *big = json_pack("{s:s}", "pattern", longp);
	CHECK_INT(jsonschema_check(big, err, sizeof err), -1);
	CHECK_HAS(err, "a pattern longer than 4096 bytes");
	json_decref(big);
	free(longp);
	/* Each pattern within its limit, all of them past the schema's. */
	json_t *props = json_object();
	for (int i = 0; i < 12; i++) {
		char name[16];
		snprintf(name, sizeof name, "p%d", i);
		json_object_set_new(props, name, json_pack("{s:s}", "pattern", "^.{9000}$"));
	}
	json_t *many = json_pack("{s:o}", "properties", props);
	CHECK_INT(jsonschema_check(many, err, sizeof err), -1);
	CHECK_HAS(err, "keyword \"pattern\" at /properties/p11: the schema's patterns together "
	               "make more than 100000 instructions");
	json_decref(many);
}

TEST(hostile_pattern_searches)
{
	/* Catastrophic for a backtracking engine, and for glibc's regexec
	 * (quadratic when an unanchored search fails: 13 s for a+b on 100 KB);
	 * here one pass each. */
	json_t *s = J("{\"pattern\":\"^(a+)+$\"}"), *x = long_string(60, "a", "b");
	struct jsonschema *js = jsonschema_compile(s, err, sizeof err);
	CHECK_INT(jsonschema_validate(js, x, err, sizeof err), -1);
	CHECK_STR(err, "at (root): keyword \"pattern\": does not match \"^(a+)+$\"");
	jsonschema_free(js);
	json_decref(s);
	json_decref(x);
	s = J("{\"items\":{\"pattern\":\"a+b\"}}");
	json_t *a = long_string(100000, "a", "");
	x = json_pack("[O,O,O]", a, a, a);
	js = jsonschema_compile(s, err, sizeof err);
	CHECK_INT(jsonschema_validate(js, x, err, sizeof err), -1);
	CHECK_STR(err, "at /0: keyword \"pattern\": does not match \"a+b\"");
	json_decref(x);
	x = json_pack("[o,o]", long_string(100000, "a", "b"), long_string(100000, "a", "b"));
	CHECK_INT(jsonschema_validate(js, x, err, sizeof err), 0);
	jsonschema_free(js);
	json_decref(s);
	json_decref(x);
	json_decref(a);
	/* A program of 2,000 instructions all alive at each of 100,000 code
	 * points: past the budget of steps, which ends the search. */
	s = J("{\"pattern\":\"[a-z]{1,1000}X\"}");
	x = long_string(100000, "a", "X");
	js = jsonschema_compile(s, err, sizeof err);
	CHECK_INT(jsonschema_validate(js, x, err, sizeof err), -1);
	CHECK_STR(err, "at (root): gave up after 10000000 steps of pattern matching");
	jsonschema_free(js);
	json_decref(s);
	json_decref(x);
}

/* --------------------------------------------------------------- patterns */

static const struct {
	const char *pattern;
	const char *subject; /* JSON string text, escapes allowed */
	int match;           /* 1, 0, or -1: refused */
} patterns[] = {
        /* search, not anchored */
        {"a+", "xxaayy", 1},
        {"^a*$", "aaa", 1},
        {"^a*$", "abc", 0},
        {"", "anything", 1},
        {"b|^a", "ca", 0},
        {"b|^a", "ab", 1},
        {"a$", "a\\n", 0},
        {"^$", "", 1},
        /* anchors anywhere (glibc's regexec gets some of these wrong) */
        {"^a|^b", "xb", 0},
        {"^a|^b", "bx", 1},
        {"(^a|b)c", "x\\nac", 0},
        {"(^a|b)c", "xbc", 1},
        {"(^a|b)c", "ac", 1},
        {"(x|^a)", "y\\na", 0},
        {"(a$|b$)", "a\\nx", 0},
        {"(a$|b$)", "xb", 1},
        {"^(?:a|b)+$", "abba", 1},
        {"^(?:a|b)+$", "ab\\n", 0},
        {"a^b", "ab", 0},
        {"a^b", "a^b", 0},
        {"\\n^a", "\\na", 0},
        {"(\\s)(^[ab]+)", "x\\na", 0},
        {"a$\\n", "a\\n", 0},
        {"(a$|b)c", "bc", 1},
        {"(a$|b)c", "ac", 0},
        {"(^a)+b", "ab", 1},
        {"(^a)+b", "aab", 0},
        {"(^.)+b", "_xb", 0},
        {"(a$)?", "a", 1},
        {"$^", "", 1},
        {"$^", "a", 0},
        {"^*", "a", -1},
        {"\\b+", "a", -1},
        /* classes and escapes */
        {"^\\d{3}-\\d{4}$", "555-1234", 1},
        {"^\\d+$", "12a", 0},
        {"^\\d$", "\\u0663", 0}, /* ARABIC-INDIC DIGIT THREE: \d is ASCII */
        {"^\\w+$", "ab_9", 1},
        {"^\\w$", "\\u00e9", 0},
        {"^\\W$", "\\u00e9", 1},
        {"^\\s$", "\\u00a0", 1},
        {"^\\s$", "\\u2003", 1},
        {"^\\s$", "\\ufeff", 1},
        {"^\\s$", "\\u200b", 0},
        {"^\\S$", "\\u2003", 0},
        {"^\\S$", "x", 1},
        {"^\\D$", "\\ud83d\\ude00", 1},
        {"^[\\s\\S]$", "\\n", 1},
        {"^[^]$", "\\n", 1},
        {"^[^\\d]$", "5", 0},
        {"^[^\\d]$", "x", 1},
        {"^[\\d_-]+$", "1_-2", 1},
        {"^[a-]$", "-", 1},
        {"^[-a]$", "-", 1},
        {"^[\\]]$", "]", 1},
        {"^[\\\\]$", "\\\\", 1},
        {"^[\\^]$", "^", 1},
        {"^[]a]$", "a", -1},
        {"^[a^]$", "^", 1},
        {"^[[]$", "[", 1},
        {"^[[.]$", ".", 1},
        {"^[[:]$", ":", 1},
        {"^[[:alpha:]]$", ":]", 1}, /* ECMA: the class [[:alph] then ]: not POSIX */
        {"^[[:alpha:]]$", "a", 0},
        {"^[\\b]$", "\\b", 1},
        {"^[a-c]+$", "abcabc", 1},
        {"^[a-c]+$", "abd", 0},
        {"^[z-a]$", "a", -1},
        {"^[\\d-z]$", "a", -1},
        {"^[\\u00e0-\\u00ff]+$", "\\u00e9\\u00ff", 1},
        {"^[\\u00e0-\\u00ff]$", "\\u00df", 0},
        {"^[\\u0080-\\uffff]$", "\\u0800", 1},
        {"^[\\u0080-\\uffff]$", "\\ud83d\\ude00", 0},
        {"^[\\ud83d\\ude00-\\ud83d\\ude4f]$", "\\ud83d\\ude03", 1},
        {"^[^a]$", "\\ud83d\\ude00", 1},
        {"^[^a]$", "\\u0000", 1},
        {"^\\u00e9+$", "\\u00e9\\u00e9", 1},
        {"^\\u00e9+$", "\\u00e9\\u00a9", 0},
        {"^\\x41\\u0042\\cJ$", "AB\\n", 1},
        {"^\\0$", "\\u0000", 1},
        {"^a\\0b$", "a\\u0000b", 1},
        {"^\\t\\n\\v\\f\\r$", "\\t\\n\\u000b\\f\\r", 1},
        {"^\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$\\/\\-$", ".*+?()[]{}|^$/-", 1},
        /* dot: one code point, not a line terminator */
        {"^.$", "\\u00e9", 1},
        {"^.$", "\\ud83d\\ude00", 1},
        {"^..$", "\\ud83d\\ude00", 0},
        {"^.$", "\\n", 0},
        {"^.$", "\\r", 0},
        {"^.$", "\\u2028", 0},
        {"^.$", "\\u0000", 1},
        {"^.{3}$", "\\u65e5\\u672c\\u8a9e", 1},
        /* groups, alternation, quantifiers */
        {"^(?:ab)+$", "abab", 1},
        {"^(?<year>\\d{4})-(?<m>\\d\\d)$", "2024-05", 1},
        {"^(a|bc)*$", "abca", 1},
        {"^(a|)$", "", 1},
        {"^a{2,3}$", "aaaa", 0},
        {"^a{2,}$", "aaaa", 1},
        {"^a{2}$", "aa", 1},
        {"^a+?b*?c??$", "aac", 1},
        {"^a{,2}$", "a{,2}", 1}, /* not a quantifier: literals (Annex B) */
        {"^a{$", "a{", 1},
        {"^}]$", "}]", 1},
        {"^x{2,1}$", "xx", -1},
        {"*a", "a", -1},
        {"a**", "a", -1},
        {"(?=a)", "a", -1},
        {"(?!a)", "a", -1},
        {"(?<=a)b", "ab", -1},
        {"(?<!a)b", "b", -1},
        {"(a)\\1", "aa", -1},
        {"\\bword", "a word", 1},
        {"\\bword", "aword", 0},
        {"\\Bx", "ax", 1},
        {"\\Bx", "a x", 0},
        {"^\\b", "a", 1},
        {"^\\b", " ", 0},
        {"\\b$", "a", 1},
        {"\\b$", "", 0},
        {"\\B$", "", 1},
        {"\\b", "\\u00e9", 0}, /* \b sees ECMA's ASCII \w */
        {"[\\B]", "B", -1},
        {"\\p{L}", "a", -1},
        {"\\u{61}", "a", -1},
        {"\\ud800", "a", -1},
        {"\\z", "z", -1},
        {"\\x4", "a", -1},
        {"\\", "a", -1},
        {"(a", "a", -1},
        {"a)", "a", -1},
        {"[a", "a", -1},
        {"(?x)", "a", -1},
        {"\\01", "a", -1},
        /* typical schema patterns */
        {"^[A-Z]{3}$", "USD", 1},
        {"^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", "a.b@example.com", 1},
        {"^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", "a b@example.com", 0},
        {"^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2})?(Z|[+-]\\d{2}:\\d{2}))?$",
         "2024-05-01T10:00:00+02:00", 1},
        {"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
         "123e4567-e89b-12d3-a456-426614174000", 1},
        {"^\\+?[1-9]\\d{1,14}$", "+4930123456", 1},
        {"^https?:\\/\\/", "https://x", 1},
};

TEST(patterns_translate_faithfully)
{
	for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) {
		char text[256];
		snprintf(text, sizeof text, "\"%s\"", patterns[i].subject);
		json_t *subject = J(text);
		char why[256] = "";
		const char *p = patterns[i].pattern;
		struct jsonschema_regex *re =
		        jsonschema_regex_compile(p, strlen(p), why, sizeof why);
		if (!re) {
			if (patterns[i].match != -1)
				UNIT_FAIL("/%s/ refused: %s", p, why);
			else if (why[0] == '\0')
				UNIT_FAIL("/%s/ refused without a reason", p);
		} else {
			int m = jsonschema_regex_search(re, json_string_value(subject),
			                                json_string_length(subject), NULL);
			if (patterns[i].match == -1)
				UNIT_FAIL("/%s/ accepted, expected a refusal", p);
			else if (m != patterns[i].match)
				UNIT_FAIL("/%s/ on \"%s\": %s, expected %s", p, patterns[i].subject,
				          m ? "match" : "no match",
				          patterns[i].match ? "match" : "no match");
			jsonschema_regex_free(re);
		}
		json_decref(subject);
	}
}

TEST(patterns_ignore_the_process_locale)
{
	/* The same answers under a UTF-8 locale as under "C". */
	if (!setlocale(LC_ALL, "C.UTF-8")) {
		printf("  note: no C.UTF-8 locale here; run under \"C\" only\n");
		return;
	}
	CHECK_INT(validate("{\"pattern\":\"^.{3}$\"}", "\"\\u65e5\\u672c\\u8a9e\""), 0);
	CHECK_INT(validate("{\"pattern\":\"^\\\\w$\"}", "\"\\u00e9\""), -1);
	CHECK_INT(validate("{\"pattern\":\"^[\\u00e0-\\u00ff]$\"}", "\"\\u00e9\""), 0);
	CHECK_INT(validate("{\"pattern\":\"^[\\u00e0-\\u00ff]$\"}", "\"\\u00df\""), -1);
	setlocale(LC_ALL, "C");
}

int main(void)
{
	RUN(official_suite_draft7);
	RUN(check_names_keyword_and_place);
	RUN(check_accepts_annotations_and_refuses_misplaced_ids);
	RUN(check_resolves_refs);
	RUN(escaped_pointer_refs);
	RUN(ref_loops_are_refused);
	RUN(ref_chains_are_bounded);
	RUN(validation_errors_name_place_and_keyword);
	RUN(numbers_integers_and_equality);
	RUN(lengths_count_code_points);
	RUN(hostile_deep_schema);
	RUN(hostile_shared_subschemas);
	RUN(hostile_deep_instance);
	RUN(hostile_huge_enum);
	RUN(hostile_exponential_any_of);
	RUN(hostile_patterns);
	RUN(hostile_pattern_searches);
	RUN(patterns_translate_faithfully);
	RUN(patterns_ignore_the_process_locale);
	return unit_done();
}
