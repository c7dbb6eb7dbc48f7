#!/bin/sh
# Turns worker/*.lua into C: for each NAME.lua, `const char lua_NAME[]` holding
# the script's text (embed_text.sh). Used by the Makefile; the scripts stay
# readable files.
#
# A script may name a number the C code defines as @MACRO@ (e.g.
# @MONEY_MAX_NUSD_DIGITS@ from worker/money.h): it becomes the macro's
# expansion, stringified by the C preprocessor, so the scripts and the C code
# share one definition. Such a macro must expand to a bare number.
set -eu
echo '/* Generated from the worker Lua scripts by tests/tools/embed_lua.sh. Do not edit. */'
echo '#include "money.h"'
echo '#define LUA_EMBED_STR_(x) #x'
echo '#define LUA_EMBED_STR(x) LUA_EMBED_STR_(x)'
# An unknown name would be stringified as itself: make it an error instead.
for m in $(sed -n 's/.*@\([A-Z][A-Z0-9_]*\)@.*/\1/p' "$@" | sort -u); do
	printf '#ifndef %s\n#error "%s (named in a Lua script) is not defined"\n#endif\n' "$m" "$m"
done
echo 'extern const char lua_scripts_generated_marker;'
echo 'const char lua_scripts_generated_marker = 1;'
for f in "$@"; do
	sh "$(dirname "$0")/embed_text.sh" "lua_$(basename "$f" .lua)" "$f" |
		sed -e 's/@\([A-Z][A-Z0-9_]*\)@/" LUA_EMBED_STR(\1) "/g'
done
