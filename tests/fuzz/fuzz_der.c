/* libFuzzer: the certificate walker that finds the SubjectPublicKeyInfo
 * for pins; whatever it returns lies inside the input. */
#include <stddef.h>
#include <stdint.h>

#include "attache/pin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *spki;
	size_t len;

	if (der_cert_spki(data, size, &spki, &len) == 0 &&
	    (spki < data || spki + len > data + size || len < 2 || spki[0] != 0x30))
		__builtin_trap();
	return 0;
}
