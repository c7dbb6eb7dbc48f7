/* promptyard version: the program's and its libraries' versions. */
#include "cli.h"

#include <curl/curl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <uv.h>

int cli_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("promptyard %s (librdkafka %s, libcurl %s, jansson %s, libuv %s)\n",
	       PROMPTYARD_VERSION, rd_kafka_version_str(),
	       curl_version_info(CURLVERSION_NOW)->version, JANSSON_VERSION, uv_version_string());
	return 0;
}
