/* fuzzutil.h -- shared by the libFuzzer targets: the entry point's prototype and a hard check. */
#ifndef TESTS_FUZZ_FUZZUTIL_H_
#define TESTS_FUZZ_FUZZUTIL_H_

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* libFuzzer calls this once per input; it must return 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional one-time set-up. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken invariant is a crash: libFuzzer saves the input. */
#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);  \
      abort();                                                                        \
    }                                                                                 \
  } while (0)

#endif
