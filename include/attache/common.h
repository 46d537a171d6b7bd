/* Conventions shared by every module.
 *
 * Fallible calls return 0 on success and -1 on failure (errno or an error
 * string says why); byte-progress calls return >0 progress, 0 "need more",
 * <0 error. Functions whose result must be looked at carry ATT_MUST_CHECK. */
#ifndef ATTACHE_COMMON_H
#define ATTACHE_COMMON_H

#define ATT_MUST_CHECK __attribute__((warn_unused_result))
#define ATT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
