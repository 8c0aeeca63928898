#!/usr/bin/env bash
# Jlama 0.8.4 peer benchmark: pure-Java (Panama Vector API) CPU decode tokens/s, batch 1, on a
# Hugging Face model directory, measured like `flora bench decode` (16-token prompt prefilled and
# not timed; N greedy decode steps timed).
#   tools/jlama-peer/run.sh MODEL_DIR [N] [extra JlamaPeer options, e.g. --warmup 16 --generate-check]
# Builds target/classes and target/lib with the main project's Maven wrapper when they are missing
# or older than the sources.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  echo "usage: $0 MODEL_DIR [N] [--warmup N] [--threads T] [--generate-check]" >&2
  exit 2
fi
model="$1"; shift
tokens=64
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then tokens="$1"; shift; fi

java_major() { # feature version of a java binary, or nothing
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p' | head -1
}
jh=""
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
  v="$(java_major "$JAVA_HOME/bin/java")"
  if [ -n "$v" ] && [ "${v%%.*}" -ge 25 ] 2>/dev/null; then jh="$JAVA_HOME"; fi
fi
[ -n "$jh" ] || jh=/usr/lib/jvm/temurin-25-jdk-amd64
if [ ! -x "$jh/bin/java" ]; then
  echo "jlama-peer: needs a JDK >= 25 (JAVA_HOME or /usr/lib/jvm/temurin-25-jdk-amd64)" >&2
  exit 1
fi

stamp="$here/target/classes/dev/flora/tools/JlamaPeer.class"
if [ ! -f "$stamp" ] || [ ! -f "$here/target/lib/jlama-core-0.8.4.jar" ] \
   || [ -n "$(find "$here/src" "$here/pom.xml" -newer "$stamp" -print -quit)" ]; then
  echo "jlama-peer: building ($here)" >&2
  JAVA_HOME="$jh" "$here/../../mvnw" -q -f "$here/pom.xml" package
fi

exec "$jh/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -XX:+UseParallelGC -Djlama.force_panama_tensor_operations=true \
  -cp "$here/target/classes:$here/target/lib/*" dev.flora.tools.JlamaPeer "$model" --tokens "$tokens" "$@"
