/* SPKI pins: base64 SHA-256 of a certificate's SubjectPublicKeyInfo, as in
 * HPKP and curl's --pinnedpubkey "sha256//...". Pure functions. */
#ifndef ATTACHE_PIN_H
#define ATTACHE_PIN_H

#include <stddef.h>
#include <stdint.h>

#include "attache/common.h"

#define PIN_LEN 32

/* Finds the SubjectPublicKeyInfo (its whole DER element) inside a DER
 * X.509 certificate. Returns 0, or -1 if the DER is not a certificate. */
ATT_MUST_CHECK int der_cert_spki(const uint8_t *der, size_t len,
                                 const uint8_t **spki, size_t *spki_len);

/* The pin of a DER certificate. Returns 0 or -1. */
ATT_MUST_CHECK int pin_of_cert(const uint8_t *der, size_t len,
                               uint8_t pin[PIN_LEN]);

/* Parses a pin written as base64 (44 characters), with an optional
 * "sha256//" prefix. Returns 0 or -1. */
ATT_MUST_CHECK int pin_parse(const char *s, uint8_t pin[PIN_LEN]);

#endif
