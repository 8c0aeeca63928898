#!/usr/bin/env bash
# On the GPU machine (no Java, no Maven there): unpacks the runtime carried in runtime/ and runs
# the GPU tests (JUnit tag "gpu") with the JUnit console launcher. Extra arguments go to it.
#   runtime/test.sh [--select-class dev.flora.cuda.CudaKernelsTest ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/runtime.sh"
selection=("$@")
[ ${#selection[@]} -eq 0 ] && selection=(--select-package dev.flora.cuda)
# JUNIT_RUNNER='compute-sanitizer --tool racecheck' runs the JVM under that program.
exec ${JUNIT_RUNNER:-} "$here/jre/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xss4m \
  -jar "$app"/test-lib/junit-platform-console-standalone-*.jar execute \
  --class-path "$app/test-classes:$app/flora.jar:$(ls "$app"/lib/*.jar "$app"/test-lib/*.jar | grep -v console-standalone | tr '\n' ':')" \
  --include-tag gpu --disable-banner --disable-ansi-colors --details=tree "${selection[@]}"
