# fuzz.mk -- libFuzzer targets (clang, ASan + UBSan), included by the top-level Makefile.
#   make fuzz [FUZZ_SECONDS=60]   build every target into build-fuzz/ and run tests/fuzz/run.sh
#   make fuzz-build               build only
# Project sources are compiled with -fsanitize=address,undefined,fuzzer-no-link;
# each target is linked with -fsanitize=fuzzer (libFuzzer's main).

FUZZ_CC      ?= clang
FUZZ_DIR     := build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_WARN    := $(filter-out -Werror,$(WARN))
FUZZ_CFLAGS  := -std=gnu11 -O1 -g -D_GNU_SOURCE -I. $(FUZZ_WARN) $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
                $(PKG_CFLAGS)
FUZZ_LDFLAGS := $(FUZZ_SAN) -fsanitize=fuzzer

FUZZ_TARGET_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS    := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_TARGET_SRC))

FUZZ_COMMON_OBJ  := $(COMMON_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_PEER_OBJ    := $(PEER_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_TRACKER_OBJ := $(TRACKER_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_LIBCOMMON   := $(FUZZ_DIR)/libshoal-common.a
FUZZ_LIBPEER     := $(FUZZ_DIR)/libshoal-peer.a
FUZZ_LIBTRACKER  := $(FUZZ_DIR)/libshoal-tracker.a

.PHONY: fuzz fuzz-build
fuzz: fuzz-build
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) FUZZ_DIR=$(FUZZ_DIR) tests/fuzz/run.sh

fuzz-build: $(FUZZ_TARGETS)

# Keep the targets' objects (make would delete them as intermediates).
.SECONDARY: $(FUZZ_TARGET_SRC:%.c=$(FUZZ_DIR)/obj/%.o)

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_LIBCOMMON): $(FUZZ_COMMON_OBJ)
	@rm -f $@; ar rcs $@ $^
$(FUZZ_LIBPEER): $(FUZZ_PEER_OBJ)
	@rm -f $@; ar rcs $@ $^
$(FUZZ_LIBTRACKER): $(FUZZ_TRACKER_OBJ)
	@rm -f $@; ar rcs $@ $^

# Every target links against the three archives: only the members it uses are pulled in.
$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIBPEER) $(FUZZ_LIBTRACKER) $(FUZZ_LIBCOMMON)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm -lpthread

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
