# Berth — build, test, install.
#
#   make                 build ./berth
#   make check           install missing Debian packages (as root), build, run every test
#   make check SAN=1     the same tests against an ASan+UBSan build
#   make bench           the benchmark against restic, borg and tar|zstd (QUICK=1: a short run),
#                        then, without QUICK=1 and when dockerd and sshd are there, bench-migrate;
#                        bench-chunks, bench-pages, bench-catalog, bench-window, bench-migrate: the other measurements
#   make install         binary, man pages, systemd units, config example: PREFIX=/usr/local DESTDIR=
#                        (SYSTEMDUNITDIR= overrides the unit directory pkg-config gives)
#   make man             regenerate man/berth.1 from the help texts
#   make deps            install the Debian packages needed to build and test

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
WERROR ?= 1
SAN ?= 0

PKGS := libarchive libzstd libcrypto sqlite3 json-c libcurl libssh2 libxml-2.0
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARNINGS := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wvla \
	-Wimplicit-fallthrough -Wno-unused-parameter -Wno-format-nonliteral
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif

OPT ?= -O2
CFLAGS ?= $(OPT) -g
BASE_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARNINGS) -D_FORTIFY_SOURCE=2 -fstack-protector-strong -pthread -MMD -MP
LDFLAGS_HARD := -Wl,-z,relro -Wl,-z,now -pthread

ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
BASE_CFLAGS := $(filter-out -D_FORTIFY_SOURCE=2,$(BASE_CFLAGS)) -O1
else
BUILD ?= build
SANFLAGS :=
endif

ALL_CFLAGS = $(BASE_CFLAGS) $(CFLAGS) $(SANFLAGS) $(PKG_CFLAGS)
ALL_LDFLAGS = $(LDFLAGS_HARD) $(SANFLAGS) $(LDFLAGS)

COMMON_SRC := $(wildcard common/*.c)
CATALOG_SRC := $(wildcard catalog/*.c)
SNAPSHOT_SRC := $(wildcard snapshot/*.c)
TRANSPORT_SRC := $(wildcard transport/*.c)
AGENT_SRC := $(wildcard agent/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

# Modules are static libraries, linked top-down: agent, transport, snapshot, catalog, common.
LIBS := $(BUILD)/libtransport.a $(BUILD)/libsnapshot.a $(BUILD)/libcatalog.a $(BUILD)/libcommon.a

BERTH := $(BUILD)/berth

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test-*.c))
# the test rules use -MMD too: keep their .d files out of the test list
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/%,$(wildcard tests/fuzz/fuzz-*.c))
# programs the end-to-end tests drive (ssh-probe: transport/ssh.c against a real sshd)
TEST_TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(wildcard tests/tools/*.c))

.PHONY: all check torture check-unit check-e2e check-fuzz deps deps-test bench bench-chunks bench-pages bench-catalog bench-window bench-migrate bench-agent bench-s3 valgrind-agent install uninstall man clean demo tests

all: berth

berth: $(BERTH)
ifneq ($(BUILD),.)
	@ln -sf $(BERTH) berth
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libcommon.a: $(call obj,$(COMMON_SRC))
$(BUILD)/libcatalog.a: $(call obj,$(CATALOG_SRC))
$(BUILD)/libsnapshot.a: $(call obj,$(SNAPSHOT_SRC))
$(BUILD)/libtransport.a: $(call obj,$(TRANSPORT_SRC))
$(BUILD)/lib%.a:
	@mkdir -p $(dir $@)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

$(BERTH): $(call obj,$(AGENT_SRC)) $(LIBS)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/test-%: tests/unit/test-%.c $(LIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIBS) $(PKG_LIBS) -lcmocka

$(BUILD)/tests/fuzz-%: tests/fuzz/fuzz-%.c tests/fuzz/replay.c $(LIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< tests/fuzz/replay.c $(FUZZ_EXTRA) $(LIBS) $(PKG_LIBS)

# fuzz-conf compiles agent/main.c in, and needs the rest of agent/
$(BUILD)/tests/fuzz-conf: FUZZ_EXTRA = $(call obj,$(filter-out agent/main.c,$(AGENT_SRC)))
$(BUILD)/tests/fuzz-conf: $(call obj,$(filter-out agent/main.c,$(AGENT_SRC)))

$(BUILD)/tests/%: tests/tools/%.c $(LIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TOOL    $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIBS) $(PKG_LIBS)

# the torture suite's LD_PRELOAD shim: write/fsync/rename fail at the Nth call
$(BUILD)/tests/faultfs.so: tests/torture/faultfs.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  SHIM    $@")
	$(Q)$(CC) $(filter-out -fsanitize=% -D_FORTIFY_SOURCE=2,$(ALL_CFLAGS)) -fPIC -shared -o $@ $< -ldl

tests: $(UNIT_TESTS) $(FUZZ_TARGETS) $(TEST_TOOLS) $(BUILD)/tests/faultfs.so

# `make check` must pass on a fresh Debian 12 machine: it installs what is
# missing first, then builds in a sub-make so pkg-config sees the new packages.
check:
	tests/deps.sh
	$(MAKE) --no-print-directory check-unit check-fuzz check-e2e

check-unit: berth tests
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done

check-fuzz: tests
	@set -e; for t in $(FUZZ_TARGETS); do n=$${t##*/fuzz-}; echo "== $$t (corpus tests/fuzz/corpus/$$n)"; \
		$$t tests/fuzz/corpus/$$n; done

check-e2e: berth $(TEST_TOOLS) $(BUILD)/tests/faultfs.so
	BERTH=$(CURDIR)/$(BERTH) tests/e2e/run.sh

deps:
	tests/deps.sh --build

deps-test:
	tests/deps.sh

# The torture suite (tests/torture/): kill -9 at random instants, write/fsync/rename
# failing through an LD_PRELOAD shim, random corruption; a summary table each.
# TRIALS= (crash trials, default 200), TORTURE_SEED= to reproduce a run, TORTURE_MB= data size.
torture: berth $(BUILD)/tests/faultfs.so
	@rc=0; \
	BERTH=$(CURDIR)/$(BERTH) TRIALS=$${TRIALS:-200} tests/torture/crash.sh || rc=1; \
	BERTH=$(CURDIR)/$(BERTH) FAULTFS=$(CURDIR)/$(BUILD)/tests/faultfs.so tests/torture/faultfs.sh || rc=1; \
	if [ -x tests/torture/corrupt.sh ]; then BERTH=$(CURDIR)/$(BERTH) tests/torture/corrupt.sh || rc=1; fi; \
	BERTH=$(CURDIR)/$(BERTH) FAULTFS=$(CURDIR)/$(BUILD)/tests/faultfs.so tests/torture/restore-volume.sh || rc=1; \
	BERTH=$(CURDIR)/$(BERTH) tests/torture/crash-remote.sh || rc=1; \
	BERTH=$(CURDIR)/$(BERTH) LOAD_QUICK=$(LOAD_QUICK) tests/torture/load.sh || rc=1; \
	exit $$rc

$(BUILD)/bench/chunker-bench: tests/bench/chunker-bench.c $(LIBS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIBS) $(PKG_LIBS)

bench: berth $(BUILD)/bench/chunker-bench
	BERTH=$(CURDIR)/$(BERTH) CHUNKER_BENCH=$(CURDIR)/$(BUILD)/bench/chunker-bench QUICK=$(QUICK) tests/bench/run.sh
	@if [ "$(QUICK)" = 1 ]; then echo "bench: bench-migrate left out (QUICK=1; run make bench-migrate QUICK=1)"; \
	elif ! command -v dockerd > /dev/null || [ ! -x /usr/sbin/sshd ]; then \
		echo "bench: bench-migrate left out (needs dockerd and openssh-server)"; \
	else BERTH=$(CURDIR)/$(BERTH) tests/bench/migrate-bench.sh; fi
	@if [ "$(QUICK)" = 1 ]; then echo "bench: bench-agent left out (QUICK=1; run make bench-agent)"; \
	elif ! command -v dockerd > /dev/null; then echo "bench: bench-agent left out (needs dockerd)"; \
	else BERTH=$(CURDIR)/$(BERTH) tests/bench/agent-enc.sh; fi

# Berth alone with several chunk sizes on every corpus: the table the defaults come from.
bench-chunks: berth
	BERTH=$(CURDIR)/$(BERTH) QUICK=$(QUICK) tests/bench/run.sh --chunk-table

# Page-aligned chunks off, 1, 2, 4 pages per chunk on the PostgreSQL corpora
# (BERTH_OLD=/path/to/berth: another build in the same run).
bench-pages: berth
	BERTH=$(CURDIR)/$(BERTH) BERTH_OLD=$(BERTH_OLD) QUICK=$(QUICK) tests/bench/run.sh --page-table --corpora pg,pgheavy

# The catalog with 100,000 files and 100 snapshots (FILES=, SNAPSHOTS= to change).
bench-catalog: berth
	BERTH=$(CURDIR)/$(BERTH) tests/bench/catalog-scale.py

# The quiesce window of a 1 GiB volume, two-phase or not, on a private dockerd.
bench-window: berth
	BERTH=$(CURDIR)/$(BERTH) tests/bench/quiesce-window.sh

# A repeat migration of a 1 GiB volume with 1% changed, against rsync -a over
# the same sshd: bytes on the wire, quiesce window (QUICK=1: 128 MiB; SIZE= in MiB).
bench-migrate: berth
	BERTH=$(CURDIR)/$(BERTH) QUICK=$(QUICK) tests/bench/migrate-bench.sh

# What encryption costs a first backup of a volume: as a command of its own
# (which opens the key: scrypt) and as a job of the agent (which opened it
# once at start); ROUNDS= runs of each (default 5), CORPUS=pg|pgheavy|files|rand.
bench-agent: berth
	BERTH=$(CURDIR)/$(BERTH) ROUNDS=$(ROUNDS) CORPUS=$(CORPUS) tests/bench/agent-enc.sh

# backup and restore against a real Ceph RADOS Gateway, vs a local directory and restic
bench-s3: berth
	BERTH=$(CURDIR)/$(BERTH) QUICK=$(QUICK) tests/bench/s3-bench.sh

# the agent under valgrind (errors and definite leaks), with a private dockerd
valgrind-agent: berth
	tests/tools/valgrind-agent.sh $(BERTH)
	ENCRYPT=1 tests/tools/valgrind-agent.sh $(BERTH)

demo: berth
	BERTH=$(CURDIR)/$(BERTH) tests/demo.sh

# Every file `make install` puts in place, below $(DESTDIR).
UNITS := $(wildcard systemd/*.service systemd/*.timer)

install: berth
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSCONFDIR)/berth
	install -m 0755 $(BERTH) $(DESTDIR)$(BINDIR)/berth
	install -m 0644 man/berth.1 $(DESTDIR)$(MANDIR)/man1/berth.1
	install -m 0644 man/berth.conf.5 $(DESTDIR)$(MANDIR)/man5/berth.conf.5
	set -e; for u in $(UNITS); do \
		sed 's|@BINDIR@|$(BINDIR)|g' "$$u" > $(DESTDIR)$(SYSTEMDUNITDIR)/$${u##*/}; \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$${u##*/}; done
	@# An existing configuration is the administrator's: never overwritten.
	[ -e $(DESTDIR)$(SYSCONFDIR)/berth/berth.conf ] || \
		install -m 0644 systemd/berth.conf $(DESTDIR)$(SYSCONFDIR)/berth/berth.conf

# The configuration is left in place, like a package's conffile.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/berth $(DESTDIR)$(MANDIR)/man1/berth.1 $(DESTDIR)$(MANDIR)/man5/berth.conf.5
	for u in $(UNITS); do rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/$${u##*/}; done

# berth(1) is made from the help texts: run after changing one.
man: berth
	man/gen-man.py $(BERTH) > man/berth.1.tmp && mv man/berth.1.tmp man/berth.1

clean:
	rm -rf build build-san berth

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
