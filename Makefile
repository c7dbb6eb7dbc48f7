# promptyard: one plain GNU Makefile (see ../shared/STYLE.md).
#   make            bin/promptyard-worker and bin/promptyard (optimised, -Werror)
#   make test       everything under ASan+UBSan in build/san, then the test suite
#   make demo       the embedded stack of SPEC §12
#   make bench      performance figures (not a test)
#   make fmt        clang-format the tree

CC      ?= cc
PYTHON  ?= /usr/bin/python3
PKGS    := rdkafka libcurl jansson hiredis libconfig libuv libmicrohttpd libcrypto
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Werror
CSTD    := -std=c11 -D_GNU_SOURCE

# The sanitizer build is the test build: it alone has the test hooks
# (worker/testhook.h), which release binaries ignore.
ifeq ($(SAN),1)
BUILD   := build/san
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
           -DPROMPTYARD_TEST_HOOKS
LDSAN   := -fsanitize=address,undefined
BINDIR  := $(BUILD)/bin
else
BUILD   := build/rel
OPT     := -O2 -g
LDSAN   :=
BINDIR  := bin
endif

DEPS_OK := $(shell pkg-config --exists $(PKGS) 2>/dev/null && command -v redis-server >/dev/null && echo yes)
ifneq ($(DEPS_OK),yes)
$(info promptyard: installing missing dependencies (deploy/install-deps.sh))
$(shell sh deploy/install-deps.sh >&2)
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS)) -lm
CFLAGS  += $(CSTD) $(WARN) $(OPT) $(PKG_CFLAGS) -Iworker -Iproducer-tools -MMD -MP
LDFLAGS += $(LDSAN)

LIB_SRC  := $(filter-out worker/main.c,$(wildcard worker/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libpromptyard.a
CLI_SRC  := $(wildcard producer-tools/*.c)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# bin/fake_provider is made of tests/tools/fake_*.c; every other tool is one file.
FAKE_SRC := $(filter-out tests/tools/fake_provider.c,$(wildcard tests/tools/fake_*.c))
TOOL_SRC := $(filter-out $(FAKE_SRC),$(wildcard tests/tools/*.c))
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BINDIR)/%)
LUA      := $(wildcard worker/*.lua)

.PHONY: all test unit demo bench fmt clean install tools
all: $(BINDIR)/promptyard-worker $(BINDIR)/promptyard $(TOOL_BIN)

tools: $(TOOL_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Lua scripts are compiled in as strings: one source of truth, no path lookup at run time.
# A script's @MACRO@ becomes the number a C header defines (embed_lua.sh).
$(BUILD)/lua_scripts.c: $(LUA) tests/tools/embed_lua.sh tests/tools/embed_text.sh
	@mkdir -p $(dir $@)
	sh tests/tools/embed_lua.sh $(LUA) > $@
# The dashboard's page (SPEC §15), likewise: one file, served from memory.
$(BUILD)/dashboard_html.c: producer-tools/dashboard.html tests/tools/embed_text.sh
	@mkdir -p $(dir $@)
	sh tests/tools/embed_text.sh dashboard_html $< > $@
# Long texts exceed C99's minimum string length; gcc and clang take any length.
$(BUILD)/lua_scripts.o $(BUILD)/dashboard_html.o: $(BUILD)/%.o: $(BUILD)/%.c
	$(CC) $(CFLAGS) -Wno-overlength-strings -c $< -o $@

$(LIB): $(LIB_OBJ) $(BUILD)/lua_scripts.o
	@rm -f $@
	ar rcs $@ $^

$(BINDIR)/promptyard-worker: $(BUILD)/worker/main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BINDIR)/promptyard: $(CLI_OBJ) $(BUILD)/dashboard_html.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BINDIR)/fake_provider: $(FAKE_SRC:%.c=$(BUILD)/%.o)

$(BINDIR)/%: $(BUILD)/tests/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

unit: all $(UNIT_BIN)

# The test suite runs against the sanitizer build; the closing line is "N passed, N failed".
test:
	$(MAKE) SAN=1 unit
	PROMPTYARD_BIN=$(CURDIR)/build/san/bin PROMPTYARD_UNIT=$(CURDIR)/build/san/tests \
		$(PYTHON) tests/run.py $(TESTS)

demo: all
	$(BINDIR)/promptyard dev

bench: all
	$(PYTHON) tests/bench.py

fmt:
	clang-format -i worker/*.c worker/*.h producer-tools/*.c tests/unit/*.c tests/unit/*.h tests/tools/*.c

install: all
	install -d $(DESTDIR)/usr/local/bin
	install -m 755 bin/promptyard-worker bin/promptyard $(DESTDIR)/usr/local/bin/

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
