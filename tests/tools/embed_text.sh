#!/bin/sh
# Turns a text file into C: `const char NAME[]` holding the file's text, for
# what is compiled into the binaries (the Lua scripts, the dashboard's page),
# so the sources stay readable files and nothing is looked up at run time.
#   embed_text.sh NAME FILE
# '?' is escaped too: a C11 compiler reads "??=" and the like as trigraphs.
set -eu
echo "extern const char $1[];"
echo "const char $1[] ="
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/"/' -e 's/$/\\n"/' "$2"
echo ';'
