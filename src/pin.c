#include "attache/pin.h"

#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>

/* One DER element at p: its tag, and where its contents start and end.
 * Returns 0, or -1 if it runs past end or uses forms certificates don't. */
struct tlv {
	uint8_t tag;
	const uint8_t *start, *body, *end;   /* element, contents, past both */
};

static int der_next(const uint8_t *p, const uint8_t *end, struct tlv *t)
{
	size_t len;

	if (end - p < 2)
		return -1;
	t->start = p;
	t->tag = *p++;
	if (*p < 0x80) {
		len = *p++;
	} else {
		unsigned n = *p++ & 0x7f;
		if (n == 0 || n > 4 || end - p < (ptrdiff_t)n)
			return -1;   /* indefinite or absurd lengths */
		for (len = 0; n > 0; n--)
			len = len << 8 | *p++;
	}
	if ((size_t)(end - p) < len)
		return -1;
	t->body = p;
	t->end = p + len;
	return 0;
}

int der_cert_spki(const uint8_t *der, size_t len, const uint8_t **spki,
                  size_t *spki_len)
{
	/* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
	 * OPTIONAL, serialNumber, signature, issuer, validity, subject,
	 * subjectPublicKeyInfo, ... }, ... } */
	static const uint8_t before_spki[] = { 0x02, 0x30, 0x30, 0x30, 0x30 };
	struct tlv cert, tbs, t;
	const uint8_t *p;

	if (der_next(der, der + len, &cert) < 0 || cert.tag != 0x30 ||
	    der_next(cert.body, cert.end, &tbs) < 0 || tbs.tag != 0x30)
		return -1;
	p = tbs.body;
	if (der_next(p, tbs.end, &t) < 0)
		return -1;
	if (t.tag == 0xa0)   /* explicit version */
		p = t.end;
	for (size_t i = 0; i < sizeof(before_spki); i++) {
		if (der_next(p, tbs.end, &t) < 0 || t.tag != before_spki[i])
			return -1;
		p = t.end;
	}
	if (der_next(p, tbs.end, &t) < 0 || t.tag != 0x30)
		return -1;
	*spki = t.start;
	*spki_len = (size_t)(t.end - t.start);
	return 0;
}

int pin_of_cert(const uint8_t *der, size_t len, uint8_t pin[PIN_LEN])
{
	const uint8_t *spki;
	size_t n;

	if (der_cert_spki(der, len, &spki, &n) < 0)
		return -1;
	return wc_Sha256Hash(spki, (word32)n, pin) == 0 ? 0 : -1;
}

int pin_parse(const char *s, uint8_t pin[PIN_LEN])
{
	uint8_t out[PIN_LEN + 4];
	word32 n = sizeof(out);

	if (strncmp(s, "sha256//", 8) == 0)
		s += 8;
	if (strlen(s) != 44 || s[43] != '=')
		return -1;
	if (Base64_Decode((const byte *)s, 44, out, &n) != 0 || n != PIN_LEN)
		return -1;
	memcpy(pin, out, PIN_LEN);
	return 0;
}
