# spout - server-sent-events fan-out broker.
#
# Targets:
#   make            build build/spoutd and the tools (needs the -dev packages;
#                   `make deps` installs them on Debian 12)
#   make run        install what is missing, build (spoutd and the clients),
#                   run spoutd on its defaults
#                   (pass flags with ARGS="--workers 2 ...")
#   make test       install what is missing, build, run unit + integration tests
#   make unit       Criterion unit tests only
#   make integration  loopback integration tests only
#   make asan       build under ASan+UBSan into build/asan/ (libc malloc)
#   make tsan       build under TSan into build/tsan/ (libc malloc)
#   make test-asan  unit + integration tests against the ASan+UBSan build
#   make test-tsan  the concurrency tests under TSan
#   make bench      spout vs nchan and Pushpin, plus ring/history/metrics
#                   figures (tools/bench.sh, ~25 min); writes docs/benchmarks.md
#                   and docs/bench-p99.png; not part of make test
#   make bench-quick  the comparison scaled down, one repetition (~2 min);
#                   table in build/bench/quick.md, docs/ untouched
#   make soak       15 minutes of mixed load (tools/soak.py) against build/spoutd;
#                   SOAK_SECONDS=N to change; not part of make test (its 60 s
#                   version, test/integration/test_soak.py, is)
#   make fuzz       libFuzzer (clang, ASan+UBSan) on each target in test/fuzz/
#                   for FUZZ_SECONDS (60) each; crashes in build/fuzz/crashes/
#                   (make test replays the seed corpus and test/fuzz/regressions/)
#   make lint       cppcheck and clang-tidy over src/, no findings allowed
#   make install    spoutd, spout-pub, spout-sub into $(DESTDIR)$(PREFIX)/bin and
#                   their man pages into .../share/man/man1 (PREFIX=/usr/local)
#   make uninstall  remove what make install put there
#   make man        regenerate docs/man/spoutd.1 from build/spoutd --help
#   make deps       only install missing packages (idempotent)
#   make clean
#
# Knobs: SAN=address,undefined|thread  URING=0 (skip liburing even if found)
#        ERR=1 (-Werror)  BUILD=dir  CC=clang
#        HARDEN=0 (no stack protector/FORTIFY/PIE/RELRO hardening flags)

CC      ?= cc
BUILD   ?= build
SAN     ?=
URING   ?= auto
ERR     ?= 0

CFLAGS_BASE := -std=gnu11 -O2 -g -Wall -Wextra -Wshadow -Wno-unused-parameter \
	-Iinclude -pthread -MMD -MP -D_GNU_SOURCE
LDLIBS_BASE := -pthread -lxxhash -lhttp_parser -lhiredis -ljwt -ljansson

ifeq ($(ERR),1)
CFLAGS_BASE += -Werror
endif

# Sanitizer builds use libc malloc: ASan/TSan replace the allocator.
ifneq ($(SAN),)
CFLAGS_BASE += -fsanitize=$(SAN) -fno-omit-frame-pointer -O1
LDFLAGS_BASE := -fsanitize=$(SAN)
MALLOC := libc
# gcc warns that TSan ignores atomic_thread_fence; the ring's fences are
# covered by test_ring's litmus test instead (see include/spout/ring.h).
ifneq ($(findstring thread,$(SAN)),)
CFLAGS_BASE += $(shell $(CC) -Werror -Wno-tsan -E -x c /dev/null >/dev/null 2>&1 && echo -Wno-tsan)
endif
else
MALLOC ?= jemalloc
endif

ifeq ($(MALLOC),jemalloc)
LDLIBS_BASE += -ljemalloc
CFLAGS_BASE += -DSP_HAVE_JEMALLOC
endif

# Hardening, on unless HARDEN=0: stack protector, stack-clash and CET
# (-fcf-protection) instrumentation, PIE, full RELRO (-z relro -z now: every
# symbol bound at start, then the GOT is read-only) and _FORTIFY_SOURCE=2
# (bounds-checked __*_chk variants of memcpy, snprintf, read...). FORTIFY
# needs optimisation (every build has -O2, or -O1 under SAN) and stays out of
# the sanitizer builds, whose interceptors check the plain functions better.
# -U first: some distributions' compilers predefine it, and a redefinition
# warns. Flags the compiler does not know (another arch, older gcc) are left out.
# (-fcf-protection emits CET code; Debian 12's crt objects are not CET-marked,
# so the binary is not either and the kernel does not enforce it yet.)
HARDEN ?= 1
cc-option = $(shell $(CC) -Werror $(1) -c -x c /dev/null -o /dev/null >/dev/null 2>&1 && echo $(1))
ifeq ($(HARDEN),1)
CFLAGS_BASE += -fPIE -fstack-protector-strong \
	$(call cc-option,-fstack-clash-protection) $(call cc-option,-fcf-protection)
LDFLAGS_BASE += -pie -Wl,-z,relro,-z,now
ifeq ($(SAN),)
CFLAGS_BASE += -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2
endif
endif

ifeq ($(URING),auto)
URING := $(shell pkg-config --exists liburing 2>/dev/null && echo 1 || echo 0)
endif
ifeq ($(URING),1)
CFLAGS_BASE += -DSP_HAVE_URING
LDLIBS_BASE += -luring
endif

CFLAGS  := $(CFLAGS_BASE) $(EXTRA_CFLAGS)
LDFLAGS := $(LDFLAGS_BASE) $(EXTRA_LDFLAGS)
LDLIBS  := $(LDLIBS_BASE)

SRC      := $(wildcard src/*.c)
LIB_SRC  := $(filter-out src/main.c,$(SRC))
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o)
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/dashboard_html.o
UNIT_SRC := $(wildcard test/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:test/unit/%.c=$(BUILD)/test/%)
FUZZ_SRC := $(filter-out test/fuzz/replay.c,$(wildcard test/fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRC:test/fuzz/%.c=%)
REPLAY_BIN := $(FUZZ_NAMES:%=$(BUILD)/fuzz-replay/%)
TOOLS    := $(BUILD)/spout-bench
FLAGSTAMP := $(BUILD)/.flags

.PHONY: all run test unit integration asan tsan test-asan test-tsan bench bench-quick soak deps \
	clean help tools fuzz fuzz-build lint

all: $(BUILD)/spoutd tools

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

# Rebuild everything when the compiler flags change.
$(FLAGSTAMP): FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS) $(LDLIBS)' | cmp -s - $@ || \
		echo '$(CC) $(CFLAGS) $(LDFLAGS) $(LDLIBS)' > $@
FORCE:

$(BUILD)/obj/%.o: src/%.c $(FLAGSTAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The live dashboard's page (src/dashboard.html), compiled in as one C
# string: sed escapes \ and " and ends each line with \n (no xxd or
# python needed, so `make run` works on a bare system).
$(BUILD)/gen/dashboard_html.c: src/dashboard.html
	@mkdir -p $(dir $@)
	{ echo '/* generated from src/dashboard.html by the Makefile: edit that */'; \
	  echo '#include <stddef.h>'; \
	  echo 'extern const char sp_dash_html[];'; \
	  echo 'extern const size_t sp_dash_html_len;'; \
	  echo 'const char sp_dash_html[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; \
	  echo ';'; \
	  echo 'const size_t sp_dash_html_len = sizeof(sp_dash_html) - 1;'; } > $@

$(BUILD)/obj/dashboard_html.o: $(BUILD)/gen/dashboard_html.c $(FLAGSTAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libspout.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/spoutd: $(BUILD)/obj/main.o $(BUILD)/libspout.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test/%: test/unit/%.c $(BUILD)/libspout.a $(FLAGSTAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libspout.a $(LDLIBS) -lcriterion

tools: $(TOOLS)

# spout-bench: one binary from the modules of tools/spout-bench/ (a small
# tool: built in one compiler call, rebuilt when any of its files changes).
BENCH_SRC := $(wildcard tools/spout-bench/*.c)
$(BUILD)/spout-bench: $(BENCH_SRC) $(wildcard tools/spout-bench/*.h) $(FLAGSTAMP)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(BENCH_SRC) -lm -pthread

$(BUILD)/ringbench: tools/ringbench.c include/spout/ring.h $(BUILD)/libspout.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libspout.a -pthread

# netdelay: NFQUEUE delay/loss, test_chaos.py's stand-in for netem on kernels
# without sch_netem (tools/netdelay/netdelay.c). A tool only where
# libnetfilter-queue is installed (tools/deps.sh test), so `make` works without.
NFQ_LIBS := $(shell pkg-config --libs libnetfilter_queue 2>/dev/null)
ifneq ($(NFQ_LIBS),)
tools: $(BUILD)/netdelay
endif
$(BUILD)/netdelay: tools/netdelay/netdelay.c $(FLAGSTAMP)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(NFQ_LIBS)

# ---- command-line clients (issue 8): spout-pub, spout-sub, install, man ----
# Each is one binary from its own modules plus the helpers both share
# (tools/clilib/), built in one compiler call like spout-bench, with this
# build's flags: `make asan` puts sanitized tools next to build/asan/spoutd.
# spout-pub reads JSON Lines with jansson, which spoutd already links.
CLI_LIB_SRC := $(wildcard tools/clilib/*.c)
CLI_DEPS := $(CLI_LIB_SRC) $(wildcard tools/clilib/*.h) include/spout/config.h $(FLAGSTAMP)
# --version prints the broker's version, kept in one place.
SPOUT_VERSION := $(shell sed -n 's/.*define SP_VERSION "\([^"]*\)".*/\1/p' include/spout/config.h)
CLI_CFLAGS = $(CFLAGS) -Itools/clilib -DSPOUT_VERSION='"$(SPOUT_VERSION)"'
PUB_SRC := $(wildcard tools/spout-pub/*.c)
SUB_SRC := $(wildcard tools/spout-sub/*.c)
tools: $(BUILD)/spout-pub $(BUILD)/spout-sub
$(BUILD)/spout-pub: $(PUB_SRC) $(wildcard tools/spout-pub/*.h) $(CLI_DEPS)
	$(CC) $(CLI_CFLAGS) $(LDFLAGS) -o $@ $(PUB_SRC) $(CLI_LIB_SRC) -ljansson
$(BUILD)/spout-sub: $(SUB_SRC) $(wildcard tools/spout-sub/*.h) $(CLI_DEPS)
	$(CC) $(CLI_CFLAGS) $(LDFLAGS) -o $@ $(SUB_SRC) $(CLI_LIB_SRC)

# make install [PREFIX=/usr/local] [DESTDIR=/staging]: the programs of this
# build (BUILD) and the man pages of docs/man/.
PREFIX ?= /usr/local
INSTALL_BIN := spoutd spout-pub spout-sub
MAN_PAGES := docs/man/spoutd.1 docs/man/spout-pub.1 docs/man/spout-sub.1
BINDIR = $(DESTDIR)$(PREFIX)/bin
MAN1DIR = $(DESTDIR)$(PREFIX)/share/man/man1
install: $(INSTALL_BIN:%=$(BUILD)/%)
	install -d "$(BINDIR)" "$(MAN1DIR)"
	install -m 0755 $^ "$(BINDIR)/"
	install -m 0644 $(MAN_PAGES) "$(MAN1DIR)/"

uninstall:
	rm -f $(patsubst %,"$(BINDIR)/%",$(INSTALL_BIN)) \
		$(patsubst %,"$(MAN1DIR)/%",$(notdir $(MAN_PAGES)))

# The OPTIONS section of spoutd.1 comes from --help (src/config.c's table);
# test_cli.py fails while the committed page is stale.
man: $(BUILD)/spoutd
	python3 tools/man-spoutd.py $(BUILD)/spoutd > docs/man/spoutd.1.tmp
	mv docs/man/spoutd.1.tmp docs/man/spoutd.1
.PHONY: install uninstall man
# ---- end command-line clients ----

# Fuzz targets (test/fuzz/). Replay: the target's entry point driven over
# files by replay.c, with this build's compiler and sanitizers (make test).
# libFuzzer: the same target with clang's engine, built by a recursive make
# into build/fuzz (clang, ASan+UBSan, every object -fsanitize=fuzzer-no-link).
$(BUILD)/fuzz-replay/%: test/fuzz/%.c test/fuzz/replay.c $(BUILD)/libspout.a $(FLAGSTAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< test/fuzz/replay.c $(BUILD)/libspout.a $(LDLIBS)

$(BUILD)/libfuzzer/%: test/fuzz/%.c $(BUILD)/libspout.a $(FLAGSTAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(BUILD)/libspout.a $(LDLIBS)

FUZZ_SECONDS ?= 60
fuzz-build:
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang SAN=address,undefined \
		EXTRA_CFLAGS=-fsanitize=fuzzer-no-link $(FUZZ_NAMES:%=build/fuzz/libfuzzer/%)

# Static checks: cppcheck, then clang-tidy with .clang-tidy (what is off,
# and why, is written there). Any finding fails. The defines are the
# default build's (io_uring, jemalloc).
LINT_DEFS := -D_GNU_SOURCE -DSP_HAVE_URING -DSP_HAVE_JEMALLOC
lint: DEPS_PROFILE = test
lint: deps
	cppcheck --enable=warning,style,performance,portability --std=c11 --inline-suppr \
		--error-exitcode=1 --quiet --suppress=missingIncludeSystem -Iinclude $(LINT_DEFS) src/
	@for f in src/*.c; do \
		clang-tidy --quiet "$$f" -- -std=gnu11 -Iinclude $(LINT_DEFS) 2>/dev/null || exit 1; \
	done; echo "lint: cppcheck and clang-tidy clean ($(words $(SRC)) files)"

fuzz: DEPS_PROFILE = test
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@tools/fuzz.sh --seconds $(FUZZ_SECONDS) $(FUZZ_NAMES)

deps:
	@tools/deps.sh $(DEPS_PROFILE)

run: DEPS_PROFILE = run
run: deps
	@$(MAKE) --no-print-directory all
	exec $(BUILD)/spoutd $(ARGS)

test: DEPS_PROFILE = test
test: deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN) $(REPLAY_BIN)
	@tools/run-tests.sh --build $(BUILD) all

unit: $(UNIT_BIN) $(REPLAY_BIN)
	@tools/run-tests.sh --build $(BUILD) unit

integration: all
	@tools/run-tests.sh --build $(BUILD) integration

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=address,undefined all \
		$(UNIT_SRC:test/unit/%.c=build/asan/test/%) $(FUZZ_NAMES:%=build/asan/fuzz-replay/%)

tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan SAN=thread all \
		$(UNIT_SRC:test/unit/%.c=build/tsan/test/%)

test-asan: asan
	@tools/run-tests.sh --build build/asan all

test-tsan: tsan
	@tools/run-tests.sh --build build/tsan tsan

bench: DEPS_PROFILE = bench
bench: deps all $(BUILD)/ringbench
	@tools/bench.sh --build $(BUILD)

bench-quick: DEPS_PROFILE = bench
bench-quick: deps all
	@tools/bench.sh --build $(BUILD) --quick

# ---- soak (issue 7): tools/soak.py, mixed load for SOAK_SECONDS (15 min) ----
SOAK_SECONDS ?= 900
soak: DEPS_PROFILE = test
soak: deps
	@$(MAKE) --no-print-directory all
	python3 tools/soak.py --duration $(SOAK_SECONDS) --spoutd $(BUILD)/spoutd \
		--bench $(BUILD)/spout-bench
# ---- end soak ----

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(UNIT_BIN:=.d)
