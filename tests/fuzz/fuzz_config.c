/* libFuzzer: the policy loader must reject or accept any bytes without
 * crashing, leaking or reading out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "attache/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct diag d = { 0 };
	struct config *c = config_parse("fuzz.yaml", (const char *)data, size, &d);

	/* Accepted means no error was said; refused means at least one. */
	if ((c != NULL) == (d.errors != 0))
		__builtin_trap();
	config_unref(c);
	diag_free(&d);
	return 0;
}
