/* libFuzzer: the SNI sniffer over any bytes; a found name is always a
 * lower-case host, and a prefix never contradicts the whole. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attache/sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[SNIFF_NAME_MAX], first[SNIFF_NAME_MAX];
	enum sniff_result whole = sniff_tls_sni(data, size, first);

	if (whole == SNIFF_FOUND) {
		for (const char *c = first; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				__builtin_trap();
		if (strlen(first) == 0 || strlen(first) > 253)
			__builtin_trap();
	}
	enum sniff_result half = sniff_tls_sni(data, size / 2, name);
	if (half != SNIFF_MORE && half != whole)
		__builtin_trap();
	if (half == SNIFF_FOUND && strcmp(name, first))
		__builtin_trap();
	return 0;
}
