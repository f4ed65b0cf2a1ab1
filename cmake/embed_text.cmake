# Turns a text file into a C++ header with one constexpr string_view.
# Usage: cmake -DINPUT=... -DOUTPUT=... -DSYMBOL=... -P embed_text.cmake
file(READ "${INPUT}" content)
set(delim "TSEMBED")
file(WRITE "${OUTPUT}" "// Generated from ${INPUT}; do not edit.\n#pragma once\n#include <string_view>\n")
file(APPEND "${OUTPUT}" "inline constexpr std::string_view ${SYMBOL} = R\"${delim}(${content})${delim}\";\n")
