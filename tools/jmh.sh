#!/usr/bin/env bash
# Runs the JMH kernel benchmarks (src/test/java/dev/flora/bench). Arguments go to JMH, e.g.
#   tools/jmh.sh LinearBenchmark -p tokens=16 -p dtype=BF16
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
java_home="${JAVA_HOME:-}"
if [ -z "$java_home" ] || ! "$java_home/bin/java" -version 2>&1 | grep -q 'version "2[5-9]'; then
  java_home="$(ls -d /usr/lib/jvm/*25* 2>/dev/null | head -1)"
fi
export JAVA_HOME="$java_home"
./mvnw -q -B -ntp test-compile dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile=target/test-classpath.txt >/dev/null
exec "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -cp "target/test-classes:target/classes:$(cat target/test-classpath.txt)" org.openjdk.jmh.Main "$@"
