# shoal -- one non-recursive Makefile.
#   make            build build/shoal and build/shoal-tracker
#   make test       unit suites + process tests (what CI runs, via tests/run-all.sh)
#   make unit       Check suites only
#   make bench      benchmarks (figures, not pass/fail)
#   make SANITIZE=1 ...   ASan+UBSan build in build-san/
#   make demo       loopback demo swarm with progress

CC       ?= cc
PKGS     := libuv libcrypto libsodium libcurl jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wformat=2 -Wno-unused-parameter
BASE_CFLAGS := -std=gnu11 -O2 -g -D_GNU_SOURCE -I. $(WARN)

ifeq ($(SANITIZE),1)
BUILD    ?= build-san
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
BASE_CFLAGS := $(filter-out -O2,$(BASE_CFLAGS)) -O1
else
BUILD    ?= build
SAN      :=
endif

ALL_CFLAGS  = $(BASE_CFLAGS) $(SAN) $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN) $(LDFLAGS)

COMMON_SRC  := $(wildcard common/*.c)
PEER_SRC    := $(filter-out peer/main.c,$(wildcard peer/*.c))
TRACKER_SRC := $(filter-out tracker/main.c,$(wildcard tracker/*.c))
UNIT_SRC    := $(wildcard tests/unit/*.c)

COMMON_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/%.o)
PEER_OBJ    := $(PEER_SRC:%.c=$(BUILD)/%.o)
TRACKER_OBJ := $(TRACKER_SRC:%.c=$(BUILD)/%.o)
UNIT_OBJ    := $(UNIT_SRC:%.c=$(BUILD)/%.o)

LIBCOMMON   := $(BUILD)/libshoal-common.a
LIBPEER     := $(BUILD)/libshoal-peer.a
LIBTRACKER  := $(BUILD)/libshoal-tracker.a

.PHONY: all test unit unit-one bench demo clean install fuzz
all: $(BUILD)/shoal $(BUILD)/shoal-tracker

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

UNIT_SUITES := $(patsubst tests/unit/test_%.c,%,$(filter tests/unit/test_%.c,$(UNIT_SRC)))

$(BUILD)/tests/unit/suites.inc: FORCE
	@mkdir -p $(dir $@)
	@printf 'SUITE(%s)\n' $(UNIT_SUITES) > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/tests/unit/runner.o: $(BUILD)/tests/unit/suites.inc

$(BUILD)/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -I$(BUILD)/tests/unit -Wno-missing-prototypes -MMD -MP -c $< -o $@

.PHONY: FORCE
FORCE:

$(LIBCOMMON): $(COMMON_OBJ)
	@rm -f $@; ar rcs $@ $^
$(LIBPEER): $(PEER_OBJ)
	@rm -f $@; ar rcs $@ $^
$(LIBTRACKER): $(TRACKER_OBJ)
	@rm -f $@; ar rcs $@ $^

$(BUILD)/shoal: $(BUILD)/peer/main.o $(LIBPEER) $(LIBCOMMON)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm -lpthread

$(BUILD)/shoal-tracker: $(BUILD)/tracker/main.o $(LIBTRACKER) $(LIBCOMMON)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm -lpthread

$(BUILD)/unit-tests: $(UNIT_OBJ) $(LIBPEER) $(LIBTRACKER) $(LIBCOMMON)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS) -lm -lpthread

# One suite against only the sources it needs, e.g.
#   make unit-one SUITE=picker SRCS="peer/picker.c common/bitfield.c"
unit-one:
	@mkdir -p $(BUILD)/one-$(SUITE)
	@printf 'SUITE(%s)\n' $(SUITE) > $(BUILD)/one-$(SUITE)/suites.inc
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -I$(BUILD)/one-$(SUITE) -Wno-missing-prototypes \
	  tests/unit/runner.c tests/unit/test_$(SUITE).c $(SRCS) -o $(BUILD)/one-$(SUITE)/unit \
	  $(CHECK_LIBS) $(PKG_LIBS) -lm -lpthread
	$(BUILD)/one-$(SUITE)/unit

unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

test: all $(BUILD)/unit-tests
	BUILD=$(BUILD) tests/run-all.sh

bench: all
	BUILD=$(BUILD) tests/bench/run.sh

demo: all
	BUILD=$(BUILD) examples/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/shoal $(BUILD)/shoal-tracker $(DESTDIR)$(PREFIX)/bin/

PREFIX ?= /usr/local

clean:
	rm -rf build build-san build-fuzz

# libFuzzer targets (clang): make fuzz [FUZZ_SECONDS=60]
-include tests/fuzz/fuzz.mk

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
