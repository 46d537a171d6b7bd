/* libFuzzer: the Host sniffer over any bytes, and every prefix of them
 * agrees with the whole (no answer changes once given). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attache/sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[SNIFF_NAME_MAX], first[SNIFF_NAME_MAX];
	enum sniff_result whole = sniff_http_host(data, size, first);

	if (whole == SNIFF_FOUND && (strlen(first) == 0 || strlen(first) > 253))
		__builtin_trap();
	/* A prefix that already has an answer must give the whole's answer. */
	size_t cut = size / 2;
	enum sniff_result half = sniff_http_host(data, cut, name);
	if (half == SNIFF_FOUND && (whole != SNIFF_FOUND || strcmp(name, first)))
		__builtin_trap();
	return 0;
}
