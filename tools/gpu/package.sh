#!/usr/bin/env bash
# Packs what the GPU machine needs to run Flora and its GPU tests, into runtime/ (git-ignored;
# carry it to the device): a jlink Java runtime made of the modules jdeps finds (xz-compressed,
# not jlink-compressed), the jar, its dependencies, the test classes and their dependencies.
#   tools/gpu/package.sh        then on the GPU machine: tools/gpu/test.sh [JUnit console options]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
export JAVA_HOME
./mvnw -B -q -ntp package -DskipTests
./mvnw -B -q -ntp dependency:copy-dependencies -DincludeScope=test -DoutputDirectory=target/test-lib
rm -rf runtime && mkdir -p runtime/app
modules="$("$JAVA_HOME/bin/jdeps" --multi-release 25 --ignore-missing-deps --print-module-deps \
  --class-path 'target/lib/*' target/flora.jar)"
modules="$modules,jdk.incubator.vector,jdk.crypto.ec,jdk.zipfs,jdk.unsupported"
echo "package: jlink modules $modules" >&2
rm -rf target/jre
"$JAVA_HOME/bin/jlink" --add-modules "$modules" --strip-debug --no-header-files --no-man-pages \
  --output target/jre
cp -r target/flora.jar target/lib runtime/app/
# The tokenizer binding ships natives for every platform: keep the linux-x86_64 one only.
tok="$(ls runtime/app/lib/tokenizers-*.jar)"
python3 - "$tok" <<'PY'
import sys, zipfile, shutil
src = sys.argv[1]; tmp = src + ".tmp"
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        parts = item.filename.split("/")
        if len(parts) > 3 and parts[:2] == ["native", "lib"] and parts[2] != "linux-x86_64":
            continue
        zout.writestr(item, zin.read(item.filename))
shutil.move(tmp, src)
PY
mkdir -p runtime/app/test-lib
for j in junit-platform-console-standalone assertj-core byte-buddy opentest4j; do cp target/test-lib/$j-*.jar runtime/app/test-lib/; done
# The fixtures travel as tracked files of the working tree; runtime.sh links them back in (64 MiB carry limit).
(cd target && tar cf - --exclude=test-classes/fixtures test-classes) | (cd runtime/app && tar xf -)
tar cf - -C target jre | xz -T0 -9e > runtime/jre.tar.xz
tar cf - -C runtime app | xz -T0 -9e > runtime/app.tar.xz
rm -rf runtime/app
cp tools/gpu/*.sh tools/gpu/*.py runtime/
du -sh runtime runtime/* >&2
