#!/bin/sh
# The tests greet.sh is judged by. A PRP protects this file: no step may change it.
set -u
. ./greet.sh
fail=0
check() {
    if [ "$2" != "$3" ]; then
        echo "FAIL $1: expected '$3', got '$2'" >&2
        fail=1
    else
        echo "ok   $1"
    fi
}
check greet "$(greet ada)" "hello, ada"
check farewell "$(farewell ada 2>/dev/null)" "goodbye, ada"
exit $fail
