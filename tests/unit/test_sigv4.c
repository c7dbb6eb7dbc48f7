/* Unit tests of sigv4, against botocore as the model: tests/tools/sigv4_vectors.py
 * (Debian's python3-botocore) signs some 130 requests at test time and this
 * test signs the same inputs with sigv4_sign and compares every header line
 * and the canonical request. Also the AWS documentation's published examples,
 * the path segment encoder, and the refusals. Runs from the repository root
 * (as tests/run.py runs it). */
#include "sigv4.h"
#include "unit.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define VECTORS_CMD "/usr/bin/python3 tests/tools/sigv4_vectors.py"

static const char *const json_ct[] = {"Content-Type: application/json"};
static const struct sigv4_credentials example_creds = {
        .access_key_id = "AKIDEXAMPLE",
        .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

/* The line of out that starts with prefix, or NULL. */
static const char *line_of(const struct sigv4_out *out, const char *prefix)
{
	for (size_t i = 0; i < out->n; i++)
		if (strncmp(out->lines[i], prefix, strlen(prefix)) == 0)
			return out->lines[i];
	return NULL;
}

/* ---------------------------------------------------------------- botocore */

static int hex_digit(char c)
{
	return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static unsigned char *hex_decode(const char *hex, size_t *len)
{
	size_t n = strlen(hex) / 2;
	unsigned char *out = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
	*len = n;
	return out;
}

/* Signs one vector and compares with botocore's lines; returns 1 when all agree. */
static int check_vector(const json_t *v)
{
	const char *name = json_string_value(json_object_get(v, "name"));
	const json_t *headers = json_object_get(v, "headers");
	size_t n_headers = json_array_size(headers);
	const char **lines = calloc(n_headers + 1, sizeof *lines);
	for (size_t i = 0; i < n_headers; i++)
		lines[i] = json_string_value(json_array_get(headers, i));
	size_t body_len;
	unsigned char *body =
	        hex_decode(json_string_value(json_object_get(v, "body_hex")), &body_len);
	struct sigv4_request r = {
	        .method = json_string_value(json_object_get(v, "method")),
	        .url = json_string_value(json_object_get(v, "url")),
	        .headers = lines,
	        .n_headers = n_headers,
	        .body = body,
	        .body_len = body_len,
	        .region = json_string_value(json_object_get(v, "region")),
	        .service = json_string_value(json_object_get(v, "service")),
	        .time_s = json_integer_value(json_object_get(v, "time_s")),
	        .content_sha256 = json_is_true(json_object_get(v, "content_sha256")),
	};
	struct sigv4_credentials c = {
	        .access_key_id = json_string_value(json_object_get(v, "access_key_id")),
	        .secret_access_key = json_string_value(json_object_get(v, "secret")),
	        .session_token = json_string_value(json_object_get(v, "token")),
	};
	int ok = 1;
	char err[256] = "";
	struct sigv4_out out = {0};
	struct buf canonical = {0};
	if (sigv4_sign(&r, &c, &out, err, sizeof err) < 0 ||
	    sigv4_canonical_request(&r, &c, &canonical, err, sizeof err) < 0) {
		UNIT_FAIL("%s: refused: %s", name, err);
		ok = 0;
		goto out;
	}
	const json_t *expect = json_object_get(v, "expect");
	if (out.n != json_array_size(expect)) {
		UNIT_FAIL("%s: %zu lines, botocore %zu", name, out.n, json_array_size(expect));
		ok = 0;
	}
	for (size_t i = 0; i < out.n && i < json_array_size(expect); i++) {
		const char *want = json_string_value(json_array_get(expect, i));
		if (strcmp(out.lines[i], want) != 0) {
			UNIT_FAIL("%s: line %zu\n  sigv4:    %s\n  botocore: %s", name, i,
			          out.lines[i], want);
			ok = 0;
		}
	}
	const char *want_cr = json_string_value(json_object_get(v, "canonical"));
	if (strcmp(canonical.data, want_cr) != 0) {
		UNIT_FAIL("%s: canonical request\n---- sigv4\n%s\n---- botocore\n%s\n----", name,
		          canonical.data, want_cr);
		ok = 0;
	}
	/* The URL was built by botocore's serializer: so must sigv4's be. */
	const char *model_id = json_string_value(json_object_get(v, "model_id"));
	if (model_id) {
		struct buf seg = {0};
		buf_puts(&seg, "/model/");
		sigv4_buf_path_segment(&seg, model_id);
		buf_puts(&seg, "/");
		if (!strstr(r.url, seg.data)) {
			UNIT_FAIL("%s: path segment %s not in the URL %s", name, seg.data, r.url);
			ok = 0;
		}
		buf_free(&seg);
	}
out:
	sigv4_out_clear(&out);
	buf_free(&canonical);
	free(body);
	free(lines);
	return ok;
}

TEST(botocore_vectors)
{
	FILE *f = popen(VECTORS_CMD, "r");
	CHECK(f != NULL);
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	int cases = 0, agreed = 0;
	while (getline(&line, &cap, f) > 0) {
		json_error_t jerr;
		json_t *v = json_loads(line, 0, &jerr);
		if (!v) {
			UNIT_FAIL("vector %d is not JSON: %s", cases + 1, jerr.text);
			break;
		}
		cases++;
		agreed += check_vector(v);
		json_decref(v);
	}
	free(line);
	int status = pclose(f);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		UNIT_FAIL("%s failed (status %d): is python3-botocore installed?", VECTORS_CMD,
		          status);
	printf("sigv4: %d of %d botocore vectors agree\n", agreed, cases);
	CHECK(cases >= 100); /* the generator writes ~130: fewer means it broke */
	CHECK_INT(agreed, cases);
}

/* ---------------------------------------------------------------- AWS documentation */

static void check_signature(const struct sigv4_request *r, const char *want_sig)
{
	struct sigv4_out out = {0};
	char err[256] = "";
	CHECK_INT(sigv4_sign(r, &example_creds, &out, err, sizeof err), 0);
	CHECK_HAS(line_of(&out, "Authorization: "), want_sig);
	CHECK_STR(line_of(&out, "X-Amz-Date: "), "X-Amz-Date: 20150830T123600Z");
	sigv4_out_clear(&out);
}

/* The published examples: the IAM ListUsers request of "Create a signed AWS
 * API request", and get-vanilla, post-vanilla and
 * get-vanilla-query-order-key-case of the Signature V4 test suite (all at
 * 20150830T123600Z, AKIDEXAMPLE, us-east-1). */
TEST(aws_documentation_examples)
{
	const int64_t t = 1440938160; /* 2015-08-30T12:36:00Z */
	const char *const iam_headers[] = {
	        "Content-Type: application/x-www-form-urlencoded; charset=utf-8",
	        "Host: iam.amazonaws.com"};
	struct sigv4_request iam = {.method = "GET",
	                            .url = "https://iam.amazonaws.com/?Action=ListUsers&"
	                                   "Version=2010-05-08",
	                            .headers = iam_headers,
	                            .n_headers = 2,
	                            .region = "us-east-1",
	                            .service = "iam",
	                            .time_s = t};
	check_signature(
	        &iam, "Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
	              "SignedHeaders=content-type;host;x-amz-date, "
	              "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");

	struct sigv4_request vanilla = {.method = "GET",
	                                .url = "https://example.amazonaws.com/",
	                                .region = "us-east-1",
	                                .service = "service",
	                                .time_s = t};
	check_signature(&vanilla,
	                "SignedHeaders=host;x-amz-date, Signature="
	                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	struct buf cr = {0};
	char err[256];
	CHECK_INT(sigv4_canonical_request(&vanilla, &example_creds, &cr, err, sizeof err), 0);
	CHECK_STR(cr.data, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
	                   "host;x-amz-date\n"
	                   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	buf_free(&cr);

	vanilla.method = "POST";
	check_signature(&vanilla,
	                "Signature="
	                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
	vanilla.method = "GET";
	vanilla.url = "https://example.amazonaws.com/?Param2=value2&Param1=value1";
	check_signature(&vanilla,
	                "Signature="
	                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

/* ---------------------------------------------------------------- the contract */

TEST(path_segment)
{
	struct {
		const char *in, *out;
	} cases[] = {
	        {"anthropic.claude-3-5-sonnet-20240620-v1:0",
	         "anthropic.claude-3-5-sonnet-20240620-v1%3A0"},
	        {"arn:aws:bedrock:us-east-1:1:inference-profile/us.x-v1:0",
	         "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x-v1%3A0"},
	        {"a b+c%d~e_f.g-h", "a%20b%2Bc%25d~e_f.g-h"},
	        {"\xc3\xbc", "%C3%BC"},
	        {".", "%2E"},
	        {"..", "%2E%2E"},
	        {".a.", ".a."},
	        {"", ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct buf b = {0};
		buf_puts(&b, "/model/");
		sigv4_buf_path_segment(&b, cases[i].in);
		CHECK_STR(b.data + 7, cases[i].out);
		buf_free(&b);
	}
}

static struct sigv4_request bedrock_request(void)
{
	static const char body[] = "{\"messages\":[]}";
	return (struct sigv4_request){
	        .method = "POST",
	        .url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m%3A0/converse",
	        .headers = json_ct,
	        .n_headers = 1,
	        .body = body,
	        .body_len = sizeof body - 1,
	        .region = "us-east-1",
	        .service = "bedrock",
	        .time_s = 1700000000,
	};
}

TEST(lines_in_order)
{
	struct sigv4_request r = bedrock_request();
	struct sigv4_credentials c = example_creds;
	struct sigv4_out out = {0};
	char err[256];
	CHECK_INT(sigv4_sign(&r, &c, &out, err, sizeof err), 0);
	CHECK_INT(out.n, 2);
	CHECK_STR(out.lines[0], "X-Amz-Date: 20231114T221320Z");
	CHECK_HAS(out.lines[1], "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/"
	                        "us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;"
	                        "x-amz-date, Signature=");
	sigv4_out_clear(&out);
	CHECK_INT(out.n, 0);

	c.session_token = "TOKEN/+=";
	r.content_sha256 = true;
	CHECK_INT(sigv4_sign(&r, &c, &out, err, sizeof err), 0);
	CHECK_INT(out.n, 4);
	CHECK_STR(out.lines[1], "X-Amz-Security-Token: TOKEN/+=");
	CHECK_HAS(out.lines[2], "X-Amz-Content-SHA256: ");
	CHECK_HAS(out.lines[3], "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;"
	                        "x-amz-security-token, Signature=");
	sigv4_out_clear(&out);
	sigv4_out_clear(NULL);

	/* An empty token is no token. */
	c.session_token = "";
	r.content_sha256 = false;
	CHECK_INT(sigv4_sign(&r, &c, &out, err, sizeof err), 0);
	CHECK_INT(out.n, 2);
	sigv4_out_clear(&out);
}

/* Every refusal: -1, an error naming the problem, nothing in out, and no
 * secret or header value in the error. */
TEST(refusals)
{
	static const char secret[] = "SECRETsecretSECRET";
	static const char token[] = "TOKENtokenTOKEN";
	const char *const reserved[] = {"Authorization: x", "X-Amz-Date: 20240101T000000Z",
	                                "x-amz-security-token: TOKENtokenTOKEN",
	                                "X-Amz-Content-SHA256: abc", "Date: Mon"};
	const char *const bad_lines[] = {"NoColon", ": no name", "Bad Name: v",
	                                 "X-Ctl: a\x01TOKENtokenTOKEN", "X-Utf8: \xc3\xbc"};
	struct {
		const char *what, *url;
		const char *header;
		const char *akid, *region, *method;
		int64_t time_s;
		const char *want;
	} cases[] = {
	        {"ftp", "ftp://example.com/", NULL, NULL, NULL, NULL, 0, "http:// or https://"},
	        {"space", "https://example.com/a b", NULL, NULL, NULL, NULL, 0, "printable"},
	        {"fragment", "https://example.com/a#b", NULL, NULL, NULL, NULL, 0, "fragment"},
	        {"userinfo", "https://u:p@example.com/", NULL, NULL, NULL, NULL, 0, "user info"},
	        {"no host", "https:///model", NULL, NULL, NULL, NULL, 0, "no host"},
	        {"port", "https://example.com:99999/", NULL, NULL, NULL, NULL, 0, "port"},
	        {"empty port", "https://example.com:/", NULL, NULL, NULL, NULL, 0, "port"},
	        {"ipv6", "http://[::1/", NULL, NULL, NULL, NULL, 0, "']'"},
	        {"bad %", "https://example.com/?a=%zz", NULL, NULL, NULL, NULL, 0, "hex digits"},
	        {"short %", "https://example.com/?a=%4", NULL, NULL, NULL, NULL, 0, "hex digits"},
	        {"empty param", "https://example.com/?a=1&&b=2", NULL, NULL, NULL, NULL, 0,
	         "empty parameter"},
	        {"trailing &", "https://example.com/?a=1&", NULL, NULL, NULL, NULL, 0,
	         "empty parameter"},
	        {"akid", NULL, NULL, "AKID/x", NULL, NULL, 0, "access key id"},
	        {"akid empty", NULL, NULL, "", NULL, NULL, 0, "access key id"},
	        {"region", NULL, NULL, NULL, "us east", NULL, 0, "region"},
	        {"method", NULL, NULL, NULL, NULL, "PO ST", 0, "method"},
	        {"time", NULL, NULL, NULL, NULL, NULL, -1, "time"},
	        {"time far", NULL, NULL, NULL, NULL, NULL, INT64_C(253402300800), "time"},
	};
	struct sigv4_credentials c = {
	        .access_key_id = "AKID", .secret_access_key = secret, .session_token = token};
	char err[256];
	struct sigv4_out out = {0};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct sigv4_request r = bedrock_request();
		if (cases[i].url)
			r.url = cases[i].url;
		struct sigv4_credentials ci = c;
		if (cases[i].akid)
			ci.access_key_id = cases[i].akid;
		if (cases[i].region)
			r.region = cases[i].region;
		if (cases[i].method)
			r.method = cases[i].method;
		if (cases[i].time_s)
			r.time_s = cases[i].time_s;
		err[0] = '\0';
		if (sigv4_sign(&r, &ci, &out, err, sizeof err) != -1)
			UNIT_FAIL("%s: signed", cases[i].what);
		CHECK_INT(out.n, 0);
		CHECK_HAS(err, cases[i].want);
		CHECK(!strstr(err, secret) && !strstr(err, token));
		sigv4_out_clear(&out);
	}
	for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
		struct sigv4_request r = bedrock_request();
		r.headers = &reserved[i];
		CHECK_INT(sigv4_sign(&r, &c, &out, err, sizeof err), -1);
		CHECK_HAS(err, "the signer's");
		CHECK(!strstr(err, token));
		CHECK_INT(out.n, 0);
	}
	for (size_t i = 0; i < sizeof bad_lines / sizeof *bad_lines; i++) {
		struct sigv4_request r = bedrock_request();
		r.headers = &bad_lines[i];
		CHECK_INT(sigv4_sign(&r, &c, &out, err, sizeof err), -1);
		CHECK_HAS(err, "\"Name: value\"");
		CHECK(!strstr(err, token));
	}
	struct sigv4_request r = bedrock_request();
	struct sigv4_credentials no_secret = c;
	no_secret.secret_access_key = "";
	CHECK_INT(sigv4_sign(&r, &no_secret, &out, err, sizeof err), -1);
	CHECK_HAS(err, "secret access key is missing");
	struct sigv4_credentials bad_token = c;
	bad_token.session_token = "TOKEN token";
	CHECK_INT(sigv4_sign(&r, &bad_token, &out, err, sizeof err), -1);
	CHECK_HAS(err, "session token");
	CHECK(!strstr(err, "TOKEN token"));
	r.body = NULL;
	CHECK_INT(sigv4_sign(&r, &c, &out, err, sizeof err), -1);
	/* A refusal from sigv4_canonical_request leaves the buffer as it was. */
	struct buf b = {0};
	buf_puts(&b, "kept");
	r = bedrock_request();
	r.url = "gopher://x/";
	CHECK_INT(sigv4_canonical_request(&r, &c, &b, err, sizeof err), -1);
	CHECK_STR(b.data, "kept");
	buf_free(&b);
	/* A tiny error buffer is fine, a zero-sized one too. */
	char tiny[8];
	CHECK_INT(sigv4_sign(&r, &c, &out, tiny, sizeof tiny), -1);
	CHECK_INT(strlen(tiny), 7);
	CHECK_INT(sigv4_sign(&r, &c, &out, NULL, 0), -1);
}

/* The signature changes with every input it covers. */
TEST(signature_covers_inputs)
{
	struct sigv4_request base = bedrock_request();
	struct sigv4_credentials c = example_creds;
	struct sigv4_out ref = {0};
	char err[256];
	CHECK_INT(sigv4_sign(&base, &c, &ref, err, sizeof err), 0);
	const char *const other_ct[] = {"Content-Type: text/plain"};
	static const char other_body[] = "{\"messages\":[1]}";
	for (int i = 0; i < 8; i++) {
		struct sigv4_request r = base;
		struct sigv4_credentials ci = c;
		switch (i) {
		case 0:
			r.url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m:0/"
			        "converse";
			break;
		case 1: r.headers = other_ct; break;
		case 2:
			r.body = other_body;
			r.body_len = sizeof other_body - 1;
			break;
		case 3: r.region = "us-west-2"; break;
		case 4: r.time_s++; break;
		case 5: ci.secret_access_key = "other"; break;
		case 6: ci.session_token = "T"; break;
		case 7:
			r.url = "https://bedrock-runtime.us-east-1.amazonaws.com:8443/model/m%3A0/"
			        "converse";
			break;
		}
		struct sigv4_out out = {0};
		CHECK_INT(sigv4_sign(&r, &ci, &out, err, sizeof err), 0);
		const char *a = strstr(line_of(&ref, "Authorization: "), "Signature=");
		const char *b = strstr(line_of(&out, "Authorization: "), "Signature=");
		if (strcmp(a, b) == 0)
			UNIT_FAIL("input %d does not change the signature", i);
		sigv4_out_clear(&out);
	}
	sigv4_out_clear(&ref);
}

int main(void)
{
	RUN(botocore_vectors);
	RUN(aws_documentation_examples);
	RUN(path_segment);
	RUN(lines_in_order);
	RUN(refusals);
	RUN(signature_covers_inputs);
	return unit_done();
}
