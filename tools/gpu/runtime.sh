# Sourced by the GPU machine's scripts (runtime/*.sh): unpacks the carried Java runtime and jar once,
# and defines java_flora (the JVM with Flora's flags; give it -D options, then -jar "$app/flora.jar" ...)
# and flora (the CLI).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -x "$here/jre/bin/java" ] || tar xJf "$here/jre.tar.xz" -C "$here"
[ -d "$here/app" ] || tar xJf "$here/app.tar.xz" -C "$here"
app="$here/app"
java_flora() { "$here/jre/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -XX:+UseParallelGC "$@"; }
flora() { java_flora -jar "$app/flora.jar" "$@"; }
