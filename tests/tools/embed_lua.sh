#!/bin/sh
# Turns worker/*.lua into C: for each NAME.lua, `const char lua_NAME[]` holding
# the script's text (embed_text.sh). Used by the Makefile; the scripts stay
# readable files.
set -eu
echo '/* Generated from the worker Lua scripts by tests/tools/embed_lua.sh. Do not edit. */'
echo 'extern const char lua_scripts_generated_marker;'
echo 'const char lua_scripts_generated_marker = 1;'
for f in "$@"; do
	sh "$(dirname "$0")/embed_text.sh" "lua_$(basename "$f" .lua)" "$f"
done
