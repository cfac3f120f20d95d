#!/bin/bash
# Prints the path of the Swift driver, or nothing: $SWIFT if set, else `swift` on PATH,
# else the usual install places, including a swiftly toolchain in the home of the user
# who ran sudo (sudo resets PATH). Shared by deploy/demo.sh, Tests/run.sh, bench/run.sh.
if [ -n "${SWIFT:-}" ]; then echo "$SWIFT"; exit 0; fi
if command -v swift >/dev/null 2>&1; then command -v swift; exit 0; fi
for candidate in /opt/swift/usr/bin/swift /usr/share/swift/usr/bin/swift /usr/local/swift/usr/bin/swift \
                 "$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)/.local/share/swiftly/bin/swift"; do
    if [ -x "$candidate" ]; then echo "$candidate"; exit 0; fi
done
