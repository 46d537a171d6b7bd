/* SPKI extraction and pin parsing, against a pin openssl computed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attache/pin.h"

static size_t slurp(const char *file, uint8_t *buf, size_t cap)
{
	char path[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/tls/%s", getenv("DATA_DIR"), file);
	if (!(f = fopen(path, "rb")))
		fail_msg("cannot open %s", path);
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static void test_pin_of_cert(void **state)
{
	uint8_t der[4096], pin[PIN_LEN], want[PIN_LEN];
	char b64[64] = { 0 };
	size_t n = slurp("server.der", der, sizeof(der));

	slurp("server.pin", (uint8_t *)b64, sizeof(b64) - 1);
	b64[44] = '\0';
	assert_int_equal(pin_parse(b64, want), 0);
	assert_int_equal(pin_of_cert(der, n, pin), 0);
	assert_memory_equal(pin, want, PIN_LEN);
}

static void test_pin_parse(void **state)
{
	uint8_t a[PIN_LEN], b[PIN_LEN];

	assert_int_equal(pin_parse("innATRtp1guUzv1D5/i+GbL6ue0ZYGw4Yc+igknCsYQ=", a), 0);
	assert_int_equal(pin_parse("sha256//innATRtp1guUzv1D5/i+GbL6ue0ZYGw4Yc+igknCsYQ=", b), 0);
	assert_memory_equal(a, b, PIN_LEN);
	assert_int_equal(pin_parse("", a), -1);
	assert_int_equal(pin_parse("innATRtp1guUzv1D5/i+GbL6ue0ZYGw4Yc+igknCsY=", a), -1);
	assert_int_equal(pin_parse("innATRtp1guUzv1D5/i+GbL6ue0ZYGw4Yc+igknCsYQQ", a), -1);
	assert_int_equal(pin_parse("in!ATRtp1guUzv1D5/i+GbL6ue0ZYGw4Yc+igknCsYQ=", a), -1);
	assert_int_equal(pin_parse("sha1//innATRtp1guUzv1D5/i+GbL6ue0ZYGw4Yc+igknCs=", a), -1);
}

static void test_bad_der(void **state)
{
	uint8_t der[4096], bad[4096];
	const uint8_t *spki;
	size_t n = slurp("server.der", der, sizeof(der)), len;

	assert_int_equal(der_cert_spki(der, n, &spki, &len), 0);
	assert_true(spki > der && spki + len <= der + n && spki[0] == 0x30);
	/* every truncation fails cleanly */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(der_cert_spki(der, k, &spki, &len), -1);
	/* every single-byte change either fails or stays inside the buffer */
	for (size_t i = 0; i < n; i++) {
		memcpy(bad, der, n);
		bad[i] ^= 0xa5;
		if (der_cert_spki(bad, n, &spki, &len) == 0)
			assert_true(spki >= bad && spki + len <= bad + n);
	}
	assert_int_equal(der_cert_spki((const uint8_t *)"\x30\x84\xff\xff\xff\xff", 6,
	                               &spki, &len), -1);
	assert_int_equal(der_cert_spki((const uint8_t *)"\x30\x80\x00\x00", 4, &spki, &len), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pin_of_cert),
		cmocka_unit_test(test_pin_parse),
		cmocka_unit_test(test_bad_der),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
